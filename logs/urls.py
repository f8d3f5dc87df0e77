"""Portal URLs owned by logs: the organization's anomaly policy."""

from django.urls import include, path

urlpatterns = [
    path("dashboard/org/anomaly-policy/", include("logs.anomalies.urls")),
]
