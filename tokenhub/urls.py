from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.utils.functional import lazy
from django.views.generic.base import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from accounts import account_settings_views, announcement_views, legal_views, preferences_views
from logs.status_page import status_page
from relay.connect import connect_page
from relay.metrics import metrics_view
from relay.pages import models_page
from relay.playground import playground
from tokenhub.health import healthz, readyz

urlpatterns = [
    # Browsers ask for /favicon.ico whatever the page links; base.html links the SVG.
    path("favicon.ico", RedirectView.as_view(url=lazy(static, str)("favicon.svg"))),
    path("healthz", healthz),
    path("readyz", readyz),
    path("metrics", metrics_view),
    path("models/", models_page, name="models"),
    path("announcements/", announcement_views.announcements_page, name="announcements"),
    path(
        "announcements/<int:announcement_id>/dismiss",
        announcement_views.announcement_dismiss_view,
        name="announcement-dismiss",
    ),
    path("playground/", playground, name="playground"),
    path("dashboard/connect/", connect_page, name="portal-connect"),
    path("admin/status/", status_page, name="admin-status"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("tokenhub.api_urls")),
    # --- media (relay) ---
    path("dashboard/media/", include("relay.urls")),
    path("dashboard/support/", include("accounts.support.urls")),
    path("dashboard/org/anomaly-policy/", include("logs.anomalies.urls")),
    path("dashboard/org/verification/", include("accounts.verification.urls")),
    path("", include("logs.urls")),
    # billing: portal page, provider webhooks, return page
    path("", include("billing.urls")),
    # OpenAPI schema and Swagger UI of /api/v1 (accounts, organizations and keys).
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    # Portal: keys, organization, members, invitations.
    path("", include("accounts.urls")),
    # Accounts: sign-in (allauth), legal documents, the settings page.
    path("accounts/", include("allauth.urls")),
    path("legal/terms/", legal_views.terms, name="legal-terms"),
    path("legal/privacy/", legal_views.privacy, name="legal-privacy"),
    path("legal/accept/", legal_views.accept, name="legal-accept"),
    path("dashboard/settings/", account_settings_views.settings_index, name="settings"),
    path("dashboard/settings/profile", account_settings_views.profile_update),
    path("dashboard/settings/sessions/end-others", account_settings_views.sessions_end_others),
    path("dashboard/settings/export", account_settings_views.export_request),
    path("dashboard/settings/export/<int:export_id>", account_settings_views.export_download),
    path("dashboard/settings/delete", account_settings_views.account_delete_view),
    path("dashboard/settings/org/require-mfa", account_settings_views.org_require_mfa),
    path("dashboard/settings/org/delete-logs", account_settings_views.org_request_logs_delete),
    # Language (Django's set_language) and light/dark theme switchers of the top bar.
    path("i18n/", include("django.conf.urls.i18n")),
    path("preferences/theme", preferences_views.theme_set, name="theme-set"),
]

# Under /api/ these answer in JSON, like the management API's other refusals.
handler400 = "tokenhub.errors.bad_request"
handler404 = "tokenhub.errors.not_found"
