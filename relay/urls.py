"""Portal and admin URLs owned by the relay: models, playground, Connect, media, status."""

from django.urls import path

from relay.connect import connect_page
from relay.pages import models_page
from relay.playground import playground
from relay.status_page import status_page
from relay.views import media_content, media_list

urlpatterns = [
    path("models/", models_page, name="models"),
    path("playground/", playground, name="playground"),
    path("dashboard/connect/", connect_page, name="portal-connect"),
    path("dashboard/media/", media_list, name="media"),
    path("dashboard/media/<str:public_id>/content", media_content, name="media-content"),
    # Before the admin site's own routes, which would otherwise claim /admin/status/.
    path("admin/status/", status_page, name="admin-status"),
]
