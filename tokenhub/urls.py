from django.contrib import admin
from django.urls import include, path

from tokenhub.health import healthz, readyz

urlpatterns = [
    path("healthz", healthz),
    path("readyz", readyz),
    path("admin/", admin.site.urls),
    path("api/v1/", include("tokenhub.api_urls")),
    # --- media (relay) ---
    path("dashboard/media/", include("relay.urls")),
]
