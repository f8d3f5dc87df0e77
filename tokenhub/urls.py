from django.contrib import admin
from django.urls import include, path

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
    # --- media (relay) ---
    path("dashboard/media/", include("relay.urls")),
    path("", include("logs.urls")),
    # billing: portal page, provider webhooks, return page
    path("", include("billing.urls")),
]
