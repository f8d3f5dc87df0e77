"""The /api/v1 management API, assembled from the apps' API modules."""

from django.urls import path

from accounts.api import ApiRootView, KeyListView
from billing.api import RedemptionView, TopUpListView

urlpatterns = [
    path("", ApiRootView.as_view(), name="api-root"),
    path("keys", KeyListView.as_view(), name="api-keys"),
    # billing
    path("topups", TopUpListView.as_view(), name="api-topups"),
    path("redemptions", RedemptionView.as_view(), name="api-redemptions"),
]
