"""ASGI entry point: /v1, /v1beta and the billing paths go to the relay, the rest to Django.

The relay is a plain ASGI application rather than Django views: Django's request
handling and middleware cost more CPU per call than the whole relay pipeline (measured
in benchmarks/, see docs/architecture.md).
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import django
import orjson
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler
from django.http.response import HttpResponseBase

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tokenhub.settings")


class DjangoHandler(ASGIHandler):
    """Django's ASGI handler, but a response whose client left is always closed.

    When the client leaves, Django cancels the request's task. Cancelled while sending,
    it never calls response.close(). Cancelled while a sync middleware (WhiteNoise) or
    view runs in its thread, asgiref gives up on the thread if the cancellation wins a
    race with the thread's start, and the response the thread still returns is dropped.
    Either way a static file (or any FileResponse) stays open until the garbage collector
    finds it, with a ResourceWarning."""

    async def send_response(self, response: HttpResponseBase, send: Any) -> None:
        try:
            await super().send_response(response, send)
        except asyncio.CancelledError:
            await sync_to_async(response.close)()
            raise

    async def run_get_response(self, request: Any) -> HttpResponseBase:
        job = asyncio.ensure_future(super().run_get_response(request))
        try:
            return await asyncio.shield(job)
        except asyncio.CancelledError:
            # The view finishes anyway (a thread cannot be cancelled): close what it returns.
            job.add_done_callback(_close_when_done)
            raise


_closing: set[asyncio.Future[None]] = set()


def _close_when_done(job: asyncio.Future[HttpResponseBase]) -> None:
    if job.cancelled() or job.exception() is not None:
        return
    closing = asyncio.ensure_future(sync_to_async(job.result().close)())
    _closing.add(closing)
    closing.add_done_callback(_closing.discard)


django.setup(set_prefix=False)
django_application = DjangoHandler()

from billing import fastledger  # noqa: E402
from relay import metrics, redis_client, upstream  # noqa: E402
from relay.app import application as relay_application  # noqa: E402  (needs Django set up)
from relay.pipeline.lease import end_lease, start_lease  # noqa: E402
from relay.pipeline.settle import drain  # noqa: E402

RELAY_PREFIXES = ("/v1/", "/v1beta/")
# OpenAI's legacy billing endpoints (the rest of /dashboard/ is the Django portal), and the
# bare API roots, so that every answer under them is an API error, never an HTML page.
RELAY_PATHS = frozenset(
    {"/dashboard/billing/subscription", "/dashboard/billing/usage", "/v1", "/v1beta"}
)


_TIMEOUT_BODY = orjson.dumps(
    {
        "error": {
            "message": "The request body did not arrive in time.",
            "type": "invalid_request_error",
            "code": "request_timeout",
        }
    }
)


def _body_deadline(receive: Any, send: Any) -> Any:
    """RECEIVE, but a body that has not fully arrived BODY_READ_TIMEOUT seconds after the
    first read is answered 408 and reported to the application as a disconnect, so a
    client that promises more bytes than it sends cannot hold a connection forever."""
    deadline: float | None = None
    complete = False

    async def guarded() -> Any:
        nonlocal deadline, complete
        if complete:
            return await receive()
        if deadline is None:
            deadline = time.monotonic() + settings.BODY_READ_TIMEOUT
        try:
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                message = await receive()
        except TimeoutError:
            complete = True
            await send(
                {
                    "type": "http.response.start",
                    "status": 408,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(_TIMEOUT_BODY)).encode()),
                        (b"connection", b"close"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": _TIMEOUT_BODY})
            return {"type": "http.disconnect"}
        if message["type"] != "http.request" or not message.get("more_body", False):
            complete = True
        return message

    return guarded


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    kind = scope["type"]
    if kind == "http":
        receive = _body_deadline(receive, send)
    if kind == "http" and (
        scope["path"].startswith(RELAY_PREFIXES) or scope["path"].rstrip("/") in RELAY_PATHS
    ):
        await relay_application(scope, receive, send)
    elif kind == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                # The lease's keeper also sweeps: a successor settles what a crash left.
                await start_lease()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                # uvicorn has let requests finish (--timeout-graceful-shutdown bounds it,
                # then cancels them: they settle as they unwind); commit what they queued.
                await drain()
                await metrics.collector.flush()
                await fastledger.close()
                await end_lease()  # nothing of ours is left to sweep
                await upstream.close()
                await redis_client.close()
                await send({"type": "lifespan.shutdown.complete"})
                return
    else:
        await django_application(scope, receive, send)
