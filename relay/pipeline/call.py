"""The state of one relayed request as it moves through the pipeline (metadata only)."""

from __future__ import annotations

import datetime as dt
import re
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal

from django.utils import timezone

from billing.pricing import PriceSheet, Usage
from relay.asgi_io import Request
from relay.catalog import KeyInfo
from relay.pipeline.journal import StreamJournal

_CLIENT_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,64}$")


@dataclass(slots=True)
class Call:
    endpoint: str
    request_id: str = field(default_factory=lambda: "req_" + uuid.uuid4().hex)
    client_request_id: str = ""
    started: float = field(default_factory=time.monotonic)
    # The log row's time: the same in every snapshot the crash journal keeps and in the
    # final settlement, so each path writes the same (request_id, created_at) key.
    started_at: dt.datetime = field(default_factory=timezone.now)
    client_ip: str | None = None
    user_agent: str = ""
    key: KeyInfo | None = None
    model: str = ""
    upstream_model: str = ""
    channel_id: int | None = None
    stream: bool = False
    attempts: int = 0
    status: int = 200
    error_code: str = ""
    ttfb_ms: int | None = None
    price: PriceSheet | None = None
    # What the serving channel's upstream charges the operator (relay.CostPrice).
    cost_price: PriceSheet | None = None
    cost_multiplier: Decimal = Decimal(1)
    served: bool = False  # an upstream answered successfully
    prompt_estimate: int = 0
    tpm_estimate: int = 0
    output_bytes: int = 0
    reported_usage: Usage | None = None
    response_started: bool = False
    answer_complete: bool = True  # False: a stream ended before its protocol's last event
    journal: StreamJournal | None = None  # a stream's progress, for the sweep after a crash
    client_gone: bool = False
    dropped_params: str = ""  # advisory field names dropped in translation
    hold: int = 0  # micro-USD held: the most this request can be charged
    funding: str = ""  # "plan" or "balance" once held (relay/pipeline/reserve.py)
    available: int | None = None  # the wallet's available credit right after the hold

    @classmethod
    def start(cls, request: Request, endpoint: str) -> Call:
        call = cls(endpoint=endpoint)
        supplied = request.headers.get("x-request-id", "")
        if supplied and _CLIENT_ID.match(supplied):
            call.client_request_id = supplied
        call.user_agent = request.headers.get("user-agent", "")[:300]
        return call

    @property
    def public_id(self) -> str:
        """Echo the caller's id when it sent one; ours is always unique in the logs."""
        return self.client_request_id or self.request_id

    def elapsed_ms(self) -> int:
        return int((time.monotonic() - self.started) * 1000)
