"""Portal URLs owned by accounts: keys, organizations, settings, legal documents,
announcements, preferences, and the support and verification pages."""

from django.urls import include, path

from accounts.views import announcements, keys, legal, organizations, preferences, settings

urlpatterns = [
    path("dashboard/keys/", keys.keys_page, name="portal-keys"),
    path("dashboard/keys/<int:key_id>/", keys.key_edit, name="portal-key-edit"),
    path("dashboard/keys/<int:key_id>/status", keys.key_status, name="portal-key-status"),
    path("dashboard/keys/<int:key_id>/rotate", keys.key_rotate_page, name="portal-key-rotate"),
    path("dashboard/keys/<int:key_id>/delete", keys.key_delete_page, name="portal-key-delete"),
    path("dashboard/org/", organizations.org_page, name="portal-org"),
    path("dashboard/org/switch", organizations.org_switch, name="portal-org-switch"),
    path("dashboard/org/create", organizations.org_create, name="portal-org-create"),
    path("dashboard/org/rename", organizations.org_rename, name="portal-org-rename"),
    path("dashboard/org/caps", organizations.org_caps, name="portal-org-caps"),
    path("dashboard/org/invite", organizations.org_invite, name="portal-org-invite"),
    path(
        "dashboard/org/invitations/<int:invitation_id>/revoke",
        organizations.org_invitation_revoke,
        name="portal-org-invitation-revoke",
    ),
    path(
        "dashboard/org/members/<int:user_id>/role",
        organizations.org_member_role,
        name="portal-org-member-role",
    ),
    path(
        "dashboard/org/members/<int:user_id>/remove",
        organizations.org_member_remove,
        name="portal-org-member-remove",
    ),
    path("dashboard/org/leave", organizations.org_leave, name="portal-org-leave"),
    path("dashboard/org/verification/", include("accounts.verification.urls")),
    path("dashboard/support/", include("accounts.support.urls")),
    path(
        "invitations/<str:token>/", organizations.invitation_accept_page, name="invitation-accept"
    ),
    # The account's settings page and its forms.
    path("dashboard/settings/", settings.settings_index, name="settings"),
    path("dashboard/settings/profile", settings.profile_update, name="settings-profile"),
    path(
        "dashboard/settings/sessions/end-others",
        settings.sessions_end_others,
        name="settings-sessions-end-others",
    ),
    path("dashboard/settings/export", settings.export_request, name="settings-export"),
    path(
        "dashboard/settings/export/<int:export_id>",
        settings.export_download,
        name="settings-export-download",
    ),
    path("dashboard/settings/delete", settings.account_delete_view, name="settings-delete"),
    path(
        "dashboard/settings/org/require-mfa",
        settings.org_require_mfa,
        name="settings-org-require-mfa",
    ),
    path(
        "dashboard/settings/org/delete-logs",
        settings.org_request_logs_delete,
        name="settings-org-delete-logs",
    ),
    # Legal documents and their acceptance.
    path("legal/terms/", legal.terms, name="legal-terms"),
    path("legal/privacy/", legal.privacy, name="legal-privacy"),
    path("legal/accept/", legal.accept, name="legal-accept"),
    # The operator's announcements.
    path("announcements/", announcements.announcements_page, name="announcements"),
    path(
        "announcements/<int:announcement_id>/dismiss",
        announcements.announcement_dismiss_view,
        name="announcement-dismiss",
    ),
    # The top bar's light/dark switcher (the language one is Django's set_language).
    path("preferences/theme", preferences.theme_set, name="theme-set"),
]
