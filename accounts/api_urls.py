"""The /api/v1 routes of accounts: keys, organizations, members, invitations, privacy."""

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
from accounts.views.privacy import MyExportView

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
    # Privacy rights.
    path("me/export", MyExportView.as_view(), name="api-me-export"),
]
