"""The logs explorer's CSV export: streamed in keyset batches, never held in memory."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from typing import Any

from asgiref.sync import sync_to_async
from django.db.models import Q, QuerySet

from logs.models import RequestLog

BATCH = 2000
COLUMNS = (
    "created_at", "request_id", "api_key_id", "model", "upstream_model", "channel_id",
    "endpoint", "stream", "status_code", "error_code", "prompt_tokens", "completion_tokens",
    "cache_read_tokens", "cache_write_tokens", "reasoning_tokens", "usage_estimated", "cost",
    "plan_cost", "latency_ms", "ttfb_ms", "attempts", "client_ip", "user_agent",
)  # fmt: skip
# Money in USD: what the balance paid, and what a plan paid instead.
MONEY = ("cost", "plan_cost")
HEADER = [f"{c}_usd" if c in MONEY else c for c in COLUMNS]
# A spreadsheet runs a cell that starts with one of these as a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: Any) -> Any:
    """VALUE for a CSV cell: text a spreadsheet would run as a formula gets a leading '."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _batch(logs: QuerySet[RequestLog], after: tuple[Any, int] | None) -> list[tuple[Any, ...]]:
    if after is not None:
        at, pk = after
        logs = logs.filter(Q(created_at__lt=at) | Q(created_at=at, pk__lt=pk))
    return list(logs.order_by("-created_at", "-pk").values_list(*COLUMNS, "pk")[:BATCH])


async def csv_rows(logs: QuerySet[RequestLog]) -> AsyncIterator[bytes]:
    """CSV bytes for LOGS, newest first, one database batch at a time."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(HEADER)
    money_at = [COLUMNS.index(c) for c in MONEY]
    after: tuple[Any, int] | None = None
    while True:
        rows = await sync_to_async(_batch)(logs, after)
        for row in rows:
            values = [spreadsheet_safe(v) for v in row[:-1]]
            values[0] = row[0].isoformat()
            for at in money_at:
                whole, micros = divmod(row[at], 1_000_000)
                values[at] = f"{whole}.{micros:06d}"
            writer.writerow(values)
        yield buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()
        if len(rows) < BATCH:
            return
        after = (rows[-1][0], rows[-1][-1])
