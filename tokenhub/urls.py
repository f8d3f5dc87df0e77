from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from logs.status_page import status_page
from relay.metrics import metrics_view
from relay.pages import models_page
from tokenhub.health import healthz, readyz

urlpatterns = [
    path("healthz", healthz),
    path("readyz", readyz),
    path("metrics", metrics_view),
    path("models/", models_page, name="models"),
    path("admin/status/", status_page, name="admin-status"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("tokenhub.api_urls")),
    path("", include("logs.urls")),
    # billing: portal page, provider webhooks, return page
    path("", include("billing.urls")),
    # OpenAPI schema and Swagger UI of /api/v1 (accounts, organizations and keys).
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    # Portal: keys, organization, members, invitations.
    path("", include("accounts.urls")),
]
