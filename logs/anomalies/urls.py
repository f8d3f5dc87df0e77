from django.urls import path

from logs.anomalies.views import anomaly_policy_save

urlpatterns = [
    path("", anomaly_policy_save, name="portal-org-anomaly-policy"),
]
