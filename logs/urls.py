from django.urls import path

from logs.views import logs_explorer

urlpatterns = [
    path("dashboard/logs/", logs_explorer, name="logs-explorer"),
]
