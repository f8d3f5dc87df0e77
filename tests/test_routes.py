"""The site's routes: every one of ours is named, the names give the paths that docs,
clients and templates use, and the layering of the url modules holds."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, resolve, reverse

pytestmark = pytest.mark.embedded

# Url modules of other projects, whose route names are theirs to choose.
_THIRD_PARTY = ("allauth.", "django.")


def _our_patterns(
    patterns: list[URLPattern | URLResolver], prefix: str = ""
) -> Iterator[tuple[str, URLPattern]]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            module = getattr(pattern.urlconf_module, "__name__", "")
            if module.startswith(_THIRD_PARTY) or pattern.app_name == "admin":
                continue
            yield from _our_patterns(pattern.url_patterns, prefix + str(pattern.pattern))
        else:
            yield prefix + str(pattern.pattern), pattern


def test_it_names_every_route_of_ours() -> None:
    routes = list(_our_patterns(get_resolver("tokenhub.urls").url_patterns))

    assert len(routes) > 90  # the walk reached every app's url module
    assert [route for route, pattern in routes if not pattern.name] == []


def test_it_gives_no_two_routes_one_name() -> None:
    names = [p.name or "" for _, p in _our_patterns(get_resolver("tokenhub.urls").url_patterns)]

    assert sorted({n for n in names if names.count(n) > 1}) == []


@pytest.mark.parametrize(
    ("name", "args", "path"),
    [
        ("dashboard", [], "/dashboard/"),
        ("logs-explorer", [], "/dashboard/logs/"),
        ("portal-keys", [], "/dashboard/keys/"),
        ("portal-key-edit", [7], "/dashboard/keys/7/"),
        ("portal-key-rotate", [7], "/dashboard/keys/7/rotate"),
        ("portal-org", [], "/dashboard/org/"),
        ("portal-org-switch", [], "/dashboard/org/switch"),
        ("portal-org-member-role", [3], "/dashboard/org/members/3/role"),
        ("portal-org-anomaly-policy", [], "/dashboard/org/anomaly-policy/"),
        ("verification", [], "/dashboard/org/verification/"),
        ("support-list", [], "/dashboard/support/"),
        ("invitation-accept", ["tok"], "/invitations/tok/"),
        ("settings", [], "/dashboard/settings/"),
        ("settings-profile", [], "/dashboard/settings/profile"),
        ("settings-sessions-end-others", [], "/dashboard/settings/sessions/end-others"),
        ("settings-export", [], "/dashboard/settings/export"),
        ("settings-export-download", [5], "/dashboard/settings/export/5"),
        ("settings-delete", [], "/dashboard/settings/delete"),
        ("settings-org-require-mfa", [], "/dashboard/settings/org/require-mfa"),
        ("settings-org-delete-logs", [], "/dashboard/settings/org/delete-logs"),
        ("legal-terms", [], "/legal/terms/"),
        ("legal-privacy", [], "/legal/privacy/"),
        ("legal-accept", [], "/legal/accept/"),
        ("announcements", [], "/announcements/"),
        ("announcement-dismiss", [2], "/announcements/2/dismiss"),
        ("theme-set", [], "/preferences/theme"),
        ("billing", [], "/dashboard/billing/"),
        ("billing-invoice", [12], "/dashboard/billing/invoices/12/"),
        ("billing-statement-pdf", ["2026-01"], "/dashboard/billing/statements/2026-01/pdf"),
        ("billing-webhook-stripe", [], "/billing/webhooks/stripe/"),
        ("models", [], "/models/"),
        ("playground", [], "/playground/"),
        ("portal-connect", [], "/dashboard/connect/"),
        ("media", [], "/dashboard/media/"),
        ("media-content", ["m_1"], "/dashboard/media/m_1/content"),
        ("admin-status", [], "/admin/status/"),
        ("healthz", [], "/healthz"),
        ("readyz", [], "/readyz"),
        ("metrics", [], "/metrics"),
        ("api-root", [], "/api/v1/"),
        ("api-keys", [], "/api/v1/keys"),
        ("api-org-member", [1, 2], "/api/v1/organizations/1/members/2"),
        ("api-me-export", [], "/api/v1/me/export"),
        ("api-topups", [], "/api/v1/topups"),
        ("api-margins", [], "/api/v1/margins"),
        ("api-finance-ledger", [], "/api/v1/finance/ledger"),
        ("api-statements", [], "/api/v1/statements"),
        ("api-statement-pdf", ["2026-01"], "/api/v1/statements/2026-01/pdf"),
        ("api-schema", [], "/api/schema/"),
        ("api-docs", [], "/api/docs/"),
    ],
)
def test_it_reverses_names_to_todays_paths(name: str, args: list[object], path: str) -> None:
    assert reverse(name, args=args) == path


def test_the_status_page_is_not_taken_by_the_admin_site() -> None:
    assert resolve("/admin/status/").url_name == "admin-status"
