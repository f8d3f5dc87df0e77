"""The relay's media surface: authenticate, dispatch, render errors, settle image calls.

Images settle like any relayed call (a request hold, charged the images and tokens the
upstream reported), and their answers carry the cost headers. Videos settle later,
through their MediaTask (relay/media/services).
"""

from __future__ import annotations

import logging

from django.utils import timezone

from billing.pricing import Usage
from relay.asgi_io import ClientDisconnected, Message, Receive, Request, Send, send_json
from relay.call import Call
from relay.catalog import KeyInfo
from relay.errors import RelayError
from relay.formats import cost, openai
from relay.media import charges, images, videos
from relay.pipeline.authenticate import authenticate
from relay.pipeline.authorize import authorize, client_ip
from relay.pipeline.settle import Bill, bill_for, in_flight, settle_call

log = logging.getLogger(__name__)

PREFIXES = ("/v1/videos", "/v1/images/")
_IMAGE_PATHS = {"/v1/images/generations": False, "/v1/images/edits": True}


def handles(path: str) -> bool:
    return path == "/v1/videos" or path.startswith(("/v1/videos/", "/v1/images/"))


async def application(request: Request, receive: Receive, send: Send, path: str) -> None:
    endpoint = "videos" if path.startswith("/v1/videos") else path[len("/v1/") :][:64]
    call = Call.start(request, endpoint=endpoint)
    call.client_ip = client_ip(request)
    headers = {"x-request-id": call.public_id}
    with in_flight():
        try:
            key = await authenticate(request)
            authorize(key, call.client_ip, timezone.now())
            if path.startswith("/v1/videos"):
                # A video is logged and settled through its MediaTask, when it finishes.
                await videos.handle(call, key, request, receive, send, path, headers)
            elif request.method == "POST" and path in _IMAGE_PATHS:
                call.key = key  # every authenticated image call is settled and logged
                answer = _with_cost_headers(send, call, key) if key.show_cost else send
                await images.generate(
                    call, key, request, receive, answer, headers, edit=_IMAGE_PATHS[path]
                )
            else:
                raise RelayError(
                    404, f"Unknown request URL: {request.method} {path[:200]}.", code="unknown_url"
                )
        except RelayError as err:
            call.status, call.error_code = err.status, err.code or err.type
            if not call.response_started:
                await send_json(
                    send, err.status, openai.error_body(err), {**headers, **err.headers}
                )
        except ClientDisconnected:
            call.status, call.error_code, call.client_gone = 499, "client_disconnected", True
        except Exception as exc:
            log.error("request %s failed: %s", call.request_id, type(exc).__name__)
            call.status, call.error_code = 500, "internal_error"
            if not call.response_started:
                internal = RelayError(
                    500, "Internal error.", type="server_error", code="internal_error"
                )
                await send_json(send, 500, openai.error_body(internal), headers)
        finally:
            if call.key is not None:
                await _settle_image_call(call)


def _image_bill(call: Call, key: KeyInfo) -> Bill:
    """What an image call is billed: the images and tokens the upstream returned."""
    usage = call.reported_usage if call.served and call.reported_usage else None
    if usage is None:
        return bill_for(call, Usage(), 0)
    price = call.price
    return bill_for(call, usage, charges.image_cost(price, key.multiplier, usage) if price else 0)


def _with_cost_headers(send: Send, call: Call, key: KeyInfo) -> Send:
    """SEND, adding the cost headers to a served answer's start (images.py writes the
    answer; by then the call holds what the upstream returned)."""

    async def send_with_cost(message: Message) -> None:
        if message["type"] == "http.response.start" and call.served:
            bill = _image_bill(call, key)
            found = cost.headers(charge=bill.charge, billed_to=bill.billed_to, balance=bill.balance)
            message["headers"] = [
                *message["headers"],
                *((k.encode("latin-1"), v.encode("latin-1")) for k, v in found.items()),
            ]
        await send(message)

    return send_with_cost


async def _settle_image_call(call: Call) -> None:
    """Charge what the upstream returned and release the rest of the hold (images only)."""
    key = call.key
    if key is None:
        return
    await settle_call(call, key, _image_bill(call, key))
