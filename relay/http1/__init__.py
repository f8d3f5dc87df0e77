"""The relay's own HTTP/1.1 client for upstream calls (relay/http1/client.py says why)."""

from relay.http1.client import (
    BadResponse,
    ClientError,
    ConnectError,
    Disconnected,
    InvalidRequest,
    Response,
    close_pool,
    request,
)

__all__ = [
    "BadResponse",
    "ClientError",
    "ConnectError",
    "Disconnected",
    "InvalidRequest",
    "Response",
    "close_pool",
    "request",
]
