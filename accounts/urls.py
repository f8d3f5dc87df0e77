"""Portal URLs owned by accounts: keys, the active organization, invitations."""

from django.urls import path

from accounts import views_keys, views_orgs

urlpatterns = [
    path("dashboard/keys/", views_keys.keys_page, name="portal-keys"),
    path("dashboard/keys/<int:key_id>/", views_keys.key_edit, name="portal-key-edit"),
    path("dashboard/keys/<int:key_id>/status", views_keys.key_status, name="portal-key-status"),
    path(
        "dashboard/keys/<int:key_id>/rotate",
        views_keys.key_rotate_page,
        name="portal-key-rotate",
    ),
    path(
        "dashboard/keys/<int:key_id>/delete",
        views_keys.key_delete_page,
        name="portal-key-delete",
    ),
    path("dashboard/org/", views_orgs.org_page, name="portal-org"),
    path("dashboard/org/switch", views_orgs.org_switch, name="portal-org-switch"),
    path("dashboard/org/create", views_orgs.org_create, name="portal-org-create"),
    path("dashboard/org/rename", views_orgs.org_rename, name="portal-org-rename"),
    path("dashboard/org/caps", views_orgs.org_caps, name="portal-org-caps"),
    path("dashboard/org/invite", views_orgs.org_invite, name="portal-org-invite"),
    path(
        "dashboard/org/invitations/<int:invitation_id>/revoke",
        views_orgs.org_invitation_revoke,
        name="portal-org-invitation-revoke",
    ),
    path(
        "dashboard/org/members/<int:user_id>/role",
        views_orgs.org_member_role,
        name="portal-org-member-role",
    ),
    path(
        "dashboard/org/members/<int:user_id>/remove",
        views_orgs.org_member_remove,
        name="portal-org-member-remove",
    ),
    path("dashboard/org/leave", views_orgs.org_leave, name="portal-org-leave"),
    path("invitations/<str:token>/", views_orgs.invitation_accept_page, name="invitation-accept"),
]
