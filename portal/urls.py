"""The portal's home and its request logs explorer."""

from django.urls import path

from portal.logs_explorer import logs_explorer
from portal.overview import overview

urlpatterns = [
    path("dashboard/", overview, name="dashboard"),
    path("dashboard/logs/", logs_explorer, name="logs-explorer"),
]
