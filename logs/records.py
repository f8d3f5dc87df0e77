"""`RequestRecord`: one request's log row as settlement carries it, typed.

Every path that settles a request builds one (relay/pipeline/settle.log_row, the media
tasks), and every writer takes its columns from it: the ORM (`billing/holds.py`), the
batch statement (`billing/pg_functions.LOG_COLUMNS`) and the crash journal
(`billing/journal.py`). The request id and the charge come from the settlement itself.
A new column is a field here and on `RequestLog`; a test keeps the two equal. Metadata
only, never content.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_datetime


@dataclasses.dataclass(frozen=True, slots=True)
class RequestRecord:
    created_at: dt.datetime
    organization_id: int
    api_key_id: int | None
    endpoint: str
    model: str = ""
    upstream_model: str = ""
    client_request_id: str = ""
    channel_id: int | None = None
    stream: bool = False
    status_code: int = 200
    error_code: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0
    reasoning_tokens: int = 0
    usage_estimated: bool = False
    upstream_cost: int | None = None  # micro-USD the upstream charges for it
    latency_ms: int = 0
    ttfb_ms: int | None = None
    attempts: int = 1
    client_ip: str | None = None
    user_agent: str = ""
    dropped_params: str = ""  # names (never values) of advisory fields left out

    def columns(self) -> dict[str, Any]:
        """The record as `RequestLog` keyword arguments (no request id, no cost)."""
        return {name: getattr(self, name) for name in FIELDS}

    def json(self) -> dict[str, Any]:
        """JSON-ready (the time as ISO 8601), for the crash journal."""
        row = self.columns()
        row["created_at"] = self.created_at.isoformat()
        return row

    def replace(self, **changes: Any) -> RequestRecord:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> RequestRecord:
        """Back from `json` (unknown keys ignored); raises TypeError or ValueError on a
        row that is not one."""
        known = {k: v for k, v in row.items() if k in _FIELD_SET}
        created = known.get("created_at")
        parsed = parse_datetime(created) if isinstance(created, str) else None
        known["created_at"] = parsed or timezone.now()
        record = cls(**known)
        if not isinstance(record.organization_id, int) or not isinstance(record.endpoint, str):
            raise TypeError("not a request record")
        return record


FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(RequestRecord))
_FIELD_SET = frozenset(FIELDS)
