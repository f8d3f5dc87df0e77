"""The relay's media surface: images and video tasks, in the relay's request frame.

Images settle like any relayed call (a request hold, charged the images and tokens the
upstream reported), and their answers carry the cost headers. Videos settle later,
through their MediaTask (relay/media/services).
"""

from __future__ import annotations

from billing.pricing import Usage
from relay.asgi_io import Message, Receive, Request, Send
from relay.catalog import KeyInfo
from relay.errors import RelayError
from relay.formats import cost
from relay.media import charges, images, videos
from relay.pipeline import frame
from relay.pipeline.call import Call
from relay.pipeline.settle import Bill, bill_for, settle_call
from relay.protocols import OPENAI

_IMAGE_PATHS = {"/v1/images/generations": False, "/v1/images/edits": True}


def handles(path: str) -> bool:
    return path == "/v1/videos" or path.startswith(("/v1/videos/", "/v1/images/"))


async def application(request: Request, receive: Receive, send: Send, path: str) -> None:
    """One media call in the request frame (relay/pipeline/frame.py), answered in OpenAI's
    format: images settle like any relayed call, videos through their MediaTask."""
    video = path.startswith("/v1/videos")
    edit = _IMAGE_PATHS.get(path) if request.method == "POST" else None

    async def serve(call: Call, key: KeyInfo, headers: dict[str, str]) -> None:
        if video:
            await videos.handle(call, key, request, receive, send, path, headers)
        elif edit is not None:
            answer = _with_cost_headers(send, call, key) if key.show_cost else send
            await images.generate(call, key, request, receive, answer, headers, edit=edit)
        else:
            raise RelayError(
                404, f"Unknown request URL: {request.method} {path[:200]}.", code="unknown_url"
            )

    await frame.run(
        request,
        send,
        endpoint="videos" if video else path[len("/v1/") :][:64],
        protocol=OPENAI,
        serve=serve,
        # Every authenticated image call is settled and logged here; a video is settled
        # and logged through its MediaTask, when it finishes.
        settle=_settle_image_call if edit is not None else None,
    )


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
