"""Portal URLs of work orders, under /dashboard/support/ (included by tokenhub/urls.py)."""

from django.urls import path

from accounts.support import views

urlpatterns = [
    path("", views.support_list, name="support-list"),
    path("new/", views.support_new, name="support-new"),
    path("<int:order_id>/", views.support_detail, name="support-detail"),
    path("<int:order_id>/close", views.support_close, name="support-close"),
    path("<int:order_id>/reopen", views.support_reopen, name="support-reopen"),
    path(
        "<int:order_id>/attachments/<int:attachment_id>",
        views.support_attachment,
        name="support-attachment",
    ),
]
