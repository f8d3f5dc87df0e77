"""The /api/v1 management API, assembled from the apps' API url modules.

Their patterns are joined rather than `include()`d so that `urlpatterns` lists every
route as written (tests/api/test_schema.py compares it with the OpenAPI schema)."""

from accounts import api_urls as accounts_api
from billing import api_urls as billing_api

urlpatterns = [*accounts_api.urlpatterns, *billing_api.urlpatterns]
