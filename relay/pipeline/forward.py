"""Step 7: send the request to one channel and classify what went wrong, if anything."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from django.conf import settings

from relay import http1


class UpstreamFailure(Exception):
    """A failed attempt. `retryable` failures move on to the next channel."""

    def __init__(
        self,
        reason: str,
        *,
        retryable: bool,
        status: int = 502,
        body: bytes = b"",
        content_type: str = "application/json",
        disable: bool = False,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.status = status
        self.body = body
        self.content_type = content_type
        self.disable = disable
        self.protocol: Any = None  # the failing channel's WireProtocol, set by the caller


async def send(
    url: str, headers: dict[str, str], body: bytes | None, method: str = "POST"
) -> http1.Response:
    """Start the request; returns once the status line and headers have arrived."""
    try:
        async with asyncio.timeout(settings.RELAY_FIRST_BYTE_TIMEOUT):
            return await http1.request(
                method,
                url,
                headers,
                body,
                connect_timeout=settings.RELAY_CONNECT_TIMEOUT,
                read_timeout=settings.RELAY_IDLE_TIMEOUT,
            )
    except TimeoutError:
        raise UpstreamFailure(
            "upstream timed out before the first byte", retryable=True, status=504
        ) from None
    except http1.ClientError as exc:
        raise UpstreamFailure(
            f"could not reach upstream ({type(exc).__name__})", retryable=True, status=502
        ) from None


def _quota_exhausted(status: int, body: bytes) -> str:
    """The provider's marker when the channel's own account has run out of credit, else "".

    OpenAI: 429 with type or code `insufficient_quota`; Anthropic: 400 "credit balance is
    too low"; resellers: 402. Gemini's RESOURCE_EXHAUSTED also means plain rate limiting,
    so it only cools the channel down.
    """
    if status == 402:
        return "402"
    if status not in (400, 429) or len(body) > 16_384:
        return ""
    try:
        error = orjson.loads(body).get("error")
    except (orjson.JSONDecodeError, AttributeError):
        return ""
    if not isinstance(error, dict):
        return ""
    if "insufficient_quota" in (error.get("type"), error.get("code")):
        return "insufficient_quota"
    message = error.get("message")
    if status == 400 and isinstance(message, str) and "credit balance is too low" in message:
        return "credit balance too low"
    return ""


async def failure_from_response(response: http1.Response) -> UpstreamFailure:
    """Read an error response (bounded) and decide whether another channel may succeed."""
    try:
        async with asyncio.timeout(settings.RELAY_IDLE_TIMEOUT):
            body = await response.read()
    except (TimeoutError, http1.ClientError):
        body = b""
    finally:
        response.release()
    status = response.status
    content_type = response.headers.get("content-type", "application/json")
    if status in (401, 403):
        # The channel's own key is bad: disable it and let another channel serve.
        return UpstreamFailure(
            f"upstream rejected the channel's credentials ({status})",
            retryable=True,
            status=status,
            body=body,
            content_type=content_type,
            disable=True,
        )
    exhausted = _quota_exhausted(status, body)
    if exhausted:
        # The channel's account is out of credit: no retry or cooldown will fix that.
        return UpstreamFailure(
            f"upstream quota exhausted ({exhausted})",
            retryable=True,
            status=status,
            body=body,
            content_type=content_type,
            disable=True,
        )
    retryable = status == 429 or status >= 500
    return UpstreamFailure(
        f"upstream answered {status}",
        retryable=retryable,
        status=status,
        body=body,
        content_type=content_type,
    )
