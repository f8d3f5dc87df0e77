"""The /api/v1 management API, assembled from the apps' API modules."""

from django.urls import path

from accounts.api import ApiRootView, KeyListView

urlpatterns = [
    path("", ApiRootView.as_view(), name="api-root"),
    path("keys", KeyListView.as_view(), name="api-keys"),
]

# Accounts: privacy rights.
from accounts.privacy_api import MyExportView  # noqa: E402

urlpatterns += [path("me/export", MyExportView.as_view(), name="api-me-export")]
