"""The request frame every relayed endpoint (chat, media, whatever comes next) runs in.

It starts the `Call`, counts the request in flight, authenticates and authorizes it,
hands it to the endpoint, answers any failure in the caller's own API format (OpenAI,
Anthropic and Gemini error bodies differ) and settles the call in `finally`, whatever
happened. An endpoint adds its steps inside; it never copies the frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from django.utils import timezone

from relay.asgi_io import ClientDisconnected, Request, Send, send_bytes, send_json
from relay.catalog import KeyInfo
from relay.errors import SHUTDOWN, RelayError, stack_of
from relay.pipeline.authenticate import authenticate
from relay.pipeline.authorize import authorize, client_ip
from relay.pipeline.call import Call
from relay.pipeline.failover import UpstreamError
from relay.pipeline.settle import in_flight

if TYPE_CHECKING:
    from relay.protocols import WireProtocol

log = logging.getLogger(__name__)
# The endpoint's own steps: serve the call (its key authorized, the response headers to
# send) and, for an endpoint that bills per request, settle it.
Serve = Callable[[Call, KeyInfo, dict[str, str]], Awaitable[None]]
Settle = Callable[[Call], Awaitable[None]]
_INTERNAL = RelayError(500, "Internal error.", type="server_error", code="internal_error")


async def run(
    request: Request,
    send: Send,
    *,
    endpoint: str,
    protocol: WireProtocol,
    serve: Serve,
    settle: Settle | None = None,
) -> None:
    """Serve one call and, given SETTLE, settle every authenticated one exactly once, also
    when it was refused, the client left or anything failed. Errors go out in PROTOCOL's
    format."""
    call = Call.start(request, endpoint=endpoint)
    call.client_ip = client_ip(request)
    headers = {"x-request-id": call.public_id}
    with in_flight():
        try:
            # Headers first: an unauthenticated caller never gets us to read a large body.
            key = await authenticate(request)
            if settle is not None:
                call.key = key  # logged and settled from here on, refused or served
            authorize(key, call.client_ip, timezone.now())
            await serve(call, key, headers)
        except RelayError as err:
            call.status, call.error_code = err.status, err.code or err.type
            if not call.response_started:
                await _answer_error(send, protocol, err, headers)
        except ClientDisconnected:
            call.status, call.error_code, call.client_gone = 499, "client_disconnected", True
        except asyncio.CancelledError:
            # Server shutdown outlasted its drain: a retryable error, then settle below.
            if not call.response_started:
                call.status, call.error_code = 503, SHUTDOWN.code or ""
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(1):
                        retry = {**headers, "retry-after": "1"}
                        await _answer_error(send, protocol, SHUTDOWN, retry)
            raise
        except Exception as exc:
            # Where, never what: exception messages can quote request content.
            log.error("request %s failed: %s", call.request_id, stack_of(exc))
            call.status, call.error_code = 500, "internal_error"
            if not call.response_started:
                await _answer_error(send, protocol, _INTERNAL, headers)
        finally:
            if settle is not None and call.key is not None:
                await settle(call)


async def _answer_error(
    send: Send, protocol: WireProtocol, err: RelayError, headers: dict[str, str]
) -> None:
    """ERR in PROTOCOL's error format; an upstream's own error body passes through to a
    caller that speaks the upstream's protocol."""
    if isinstance(err, UpstreamError):
        if err.protocol is protocol:
            ctype = err.content_type.encode("latin-1")
            await send_bytes(send, err.status, err.body, headers, ctype)
            return
        err = err.translated()
    await send_json(send, err.status, protocol.error_body(err), {**headers, **err.headers})
