from django.urls import path

from relay.views import media_content, media_list

urlpatterns = [
    path("", media_list, name="media"),
    path("<str:public_id>/content", media_content, name="media-content"),
]
