"""The site's URLs: each app's own url module, plus the admin, health, metrics, language
and API schema wiring. Every route is named (tests/test_routes.py)."""

from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.utils.functional import lazy
from django.views.generic.base import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from relay.metrics import metrics_view
from tokenhub.health import healthz, readyz

urlpatterns = [
    # Browsers ask for /favicon.ico whatever the page links; base.html links the SVG.
    path(
        "favicon.ico",
        RedirectView.as_view(url=lazy(static, str)("favicon.svg")),
        name="favicon",
    ),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics_view, name="metrics"),
    # Relay pages, including /admin/status/: before the admin site's routes.
    path("", include("relay.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", include("tokenhub.api_urls")),
    # OpenAPI schema and Swagger UI of /api/v1.
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    # The portal's home and logs explorer, then each app's pages.
    path("", include("portal.urls")),
    path("", include("logs.urls")),
    # billing: portal pages, provider webhooks, return page
    path("", include("billing.urls")),
    path("", include("accounts.urls")),
    # Sign-in, sign-up and MFA (allauth).
    path("accounts/", include("allauth.urls")),
    # Language (Django's set_language).
    path("i18n/", include("django.conf.urls.i18n")),
]

# Under /api/ these answer in JSON, like the management API's other refusals.
handler400 = "tokenhub.errors.bad_request"
handler404 = "tokenhub.errors.not_found"
