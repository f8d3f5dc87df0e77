"""Middleware that adapts Django to the ASGI server and keeps out input no view can store
(no business logic)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

from asgiref.sync import markcoroutinefunction, sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponseBadRequest, QueryDict, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.time_zones import TZ_COOKIE, zone_get
from tokenhub.errors import API_PREFIX, api_refusal


class AsyncFileStreamsMiddleware:
    """Under ASGI, serve synchronous file streams (WhiteNoise's static files, FileResponse)
    chunk by chunk from a worker thread.

    Django would otherwise read the whole file into memory first and warn on every
    request. Under WSGI (and Django's test client) nothing changes. Async-only and
    outermost, so the synchronous middleware below it run as one block in one thread.
    """

    sync_capable = False
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Awaitable[HttpResponseBase]]) -> None:
        self.get_response = get_response
        markcoroutinefunction(self)

    async def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = await self.get_response(request)
        under_asgi = isinstance(request, ASGIRequest)  # the test client is WSGI-like
        if (
            under_asgi
            and isinstance(response, StreamingHttpResponse)
            and isinstance(content := response.streaming_content, Iterator)  # not is_async
        ):
            response.streaming_content = _chunks(content)
        return response


async def _chunks(iterator: Iterator[bytes]) -> AsyncIterator[bytes]:
    read: Callable[..., Awaitable[bytes | None]] = sync_to_async(next, thread_sensitive=False)
    while (part := await read(iterator, None)) is not None:
        yield part


class RefuseNulMiddleware:
    """400 for a NUL character anywhere in the path, the query or a submitted form: no
    database column can store one, and no page has a use for one."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if (
            "\x00" in request.path
            or _has_nul(request.GET)
            or (
                request.method == "POST"
                and request.content_type in _FORM_TYPES
                and _has_nul(request.POST)
            )
        ):
            if request.path.startswith(API_PREFIX):
                return api_refusal(400, _("must not contain NUL characters"))
            return HttpResponseBadRequest("NUL characters are not allowed.")
        return self.get_response(request)


_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _has_nul(data: QueryDict) -> bool:
    return any("\x00" in k or any("\x00" in v for v in data.getlist(k)) for k in data)


class TimeZoneMiddleware:
    """Show (and read) the portal's times in the viewer's zone: the profile's choice, else
    the browser's (the `tz` cookie base.html sets), else UTC. Unknown names are ignored.
    The management API stays in UTC whoever calls it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        zone = None
        if not request.path.startswith(API_PREFIX):
            chosen = getattr(getattr(request, "user", None), "time_zone", "")
            zone = zone_get(chosen) or zone_get(request.COOKIES.get(TZ_COOKIE))
        if zone is None:
            timezone.deactivate()
        else:
            timezone.activate(zone)
        return self.get_response(request)
