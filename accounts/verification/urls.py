"""Portal URLs of verification, under /dashboard/org/verification/ (tokenhub/urls.py)."""

from django.urls import path

from accounts.verification import views

urlpatterns = [
    path("", views.verification_page, name="verification"),
    path(
        "<int:request_id>/withdraw",
        views.verification_withdraw_view,
        name="verification-withdraw",
    ),
]
