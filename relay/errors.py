"""Relay failures as one exception type; each client protocol renders it its own way."""

from __future__ import annotations

import traceback


class RelayError(Exception):
    """A failure to report to the client. `message` must never contain request content."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",  # noqa: A002 - OpenAI's field name
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.headers = headers or {}


def bad_request(message: str, *, param: str | None = None, code: str | None = None) -> RelayError:
    return RelayError(400, message, param=param, code=code)


def unauthorized(message: str = "Incorrect or missing API key.") -> RelayError:
    return RelayError(401, message, type="authentication_error", code="invalid_api_key")


def forbidden(message: str, code: str) -> RelayError:
    return RelayError(403, message, type="permission_error", code=code)


def model_not_found(model: str) -> RelayError:
    # The model name is the caller's own routing input, not prompt content.
    return RelayError(
        404,
        f"The model '{model[:200]}' does not exist or you do not have access to it.",
        code="model_not_found",
        param="model",
    )


def insufficient_quota(message: str) -> RelayError:
    # 402, not 429: the official SDKs retry 429s, which would only repeat the refusal.
    return RelayError(402, message, type="insufficient_quota", code="insufficient_quota")


def invoice_overdue(number: str, billing_url: str) -> RelayError:
    # 402 like insufficient_quota (SDKs do not retry it), with its own code to tell them apart.
    return RelayError(
        402,
        f"Invoice {number} is overdue: requests are refused until it is paid. Pay it on "
        f"the billing page ({billing_url}) or by bank transfer quoting {number}.",
        type="insufficient_quota",
        code="invoice_overdue",
    )


def rate_limited(message: str, retry_after: int) -> RelayError:
    return RelayError(
        429,
        message,
        type="rate_limit_error",
        code="rate_limit_exceeded",
        headers={"retry-after": str(max(1, retry_after))},
    )


def model_not_priced(model: str) -> RelayError:
    # Channels serve it but it has no price: never served unbilled.
    return RelayError(
        503,
        f"The model '{model[:200]}' is not available yet (no price configured).",
        type="service_unavailable",
        code="model_not_priced",
    )


def no_channel(model: str) -> RelayError:
    return RelayError(
        503,
        f"No upstream channel is available for model '{model[:200]}'. Try again later.",
        type="service_unavailable",
        code="no_available_channel",
    )


# Server shutdown outlasted its drain: answered, or written into a stream, as a retryable error.
SHUTDOWN = RelayError(
    503,
    "The server is restarting and could not finish this request. Retry it.",
    type="service_unavailable",
    code="shutdown",
)


def stack_of(exc: BaseException) -> str:
    """Where EXC was raised: its type and each frame's file, line and function, outermost
    first. Never its message or any value: those can quote request content."""
    frames = traceback.extract_tb(exc.__traceback__)
    # The last two path parts (relay/proxy.py): enough to find it, no home directories.
    where = " > ".join(
        f"{'/'.join(f.filename.rsplit('/', 2)[-2:])}:{f.lineno} {f.name}" for f in frames
    )
    return f"{type(exc).__name__} at {where}" if where else type(exc).__name__
