from django.urls import path

from logs.views import logs_explorer, overview

urlpatterns = [
    path("dashboard/", overview, name="dashboard"),
    path("dashboard/logs/", logs_explorer, name="logs-explorer"),
]
