"""Error pages that depend on where the request was going: under /api/ the management API
answers in its own format, `{"detail": "..."}`, never with an HTML page."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import exceptions

API_PREFIX = "/api/"


def api_refusal(status: int, detail: str) -> JsonResponse:
    return JsonResponse({"detail": detail}, status=status)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """Django's 400 page, or the API's own 400 for what fails before a view reads the request
    (a multipart body that cannot be parsed)."""
    if request.path.startswith(API_PREFIX):
        return api_refusal(400, str(exceptions.ParseError.default_detail))
    return defaults.bad_request(request, exception)


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """Django's 404 page, or the API's own 404 for a path under /api/ that names no operation
    (`/api/v1/keys/x`, when ids are integers)."""
    if request.path.startswith(API_PREFIX):
        return api_refusal(404, str(exceptions.NotFound.default_detail))
    return defaults.page_not_found(request, exception)
