"""The /api/v1 management API, assembled from the apps' API modules."""

from django.urls import path

from accounts.api import (
    ApiRootView,
    InvitationDetailView,
    KeyDetailView,
    KeyListView,
    KeyRotateView,
    MemberDetailView,
    MemberListView,
    OrganizationDetailView,
    OrganizationListView,
)
from billing.api import RedemptionView, SubscriptionView, TopUpListView

urlpatterns = [
    path("", ApiRootView.as_view(), name="api-root"),
    path("keys", KeyListView.as_view(), name="api-keys"),
    path("keys/<int:key_id>", KeyDetailView.as_view(), name="api-key"),
    path("keys/<int:key_id>/rotate", KeyRotateView.as_view(), name="api-key-rotate"),
    path("organizations", OrganizationListView.as_view(), name="api-organizations"),
    path("organizations/<int:org_id>", OrganizationDetailView.as_view(), name="api-organization"),
    path("organizations/<int:org_id>/members", MemberListView.as_view(), name="api-org-members"),
    path(
        "organizations/<int:org_id>/members/<int:user_id>",
        MemberDetailView.as_view(),
        name="api-org-member",
    ),
    path(
        "organizations/<int:org_id>/invitations/<int:invitation_id>",
        InvitationDetailView.as_view(),
        name="api-org-invitation",
    ),
    # billing
    path("topups", TopUpListView.as_view(), name="api-topups"),
    path("redemptions", RedemptionView.as_view(), name="api-redemptions"),
    path("subscription", SubscriptionView.as_view(), name="api-subscription"),
]

# Accounts: privacy rights.
from accounts.privacy_api import MyExportView  # noqa: E402

urlpatterns += [path("me/export", MyExportView.as_view(), name="api-me-export")]
