"""The /api/v1 management API, assembled from the apps' API modules."""

from django.urls import path

from accounts.api import ApiRootView, KeyListView

urlpatterns = [
    path("", ApiRootView.as_view(), name="api-root"),
    path("keys", KeyListView.as_view(), name="api-keys"),
]
