"""Caps and plan windows: limits on usage counted in `UsageBucket`s, checked with the hold.

A `Cap` names a meter (`s<subscription>`, `k<key>`, `o<organization>`), how its usage is
bucketed and the limit. The hold's admission (`th_hold_place` on PostgreSQL,
`billing/holds.hold_place` on the ORM) checks every cap of a request under the same row
locks as the balance, counting the usage settled in the window plus the holds in flight
plus this request (its hold for USD, 1 for requests), so N concurrent requests cannot
overshoot a cap any more than a balance. Settlement adds the request's charge and count
to the buckets of its hold's meters in the same transaction: windows survive restarts.

Rolling windows count a bucket until its end is WINDOW seconds old (never less than the
window, at most one bucket more); calendar caps count the current UTC day, ISO week or
month.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.utils import timezone

# Bucket lengths of the rolling spans, in seconds.
SPAN_SECONDS = {"m": 600, "h": 3600}
USD, REQUESTS, CONCURRENT = "usd", "requests", "concurrent"
FIVE_HOURS = 5 * 3600
WEEK = 7 * 24 * 3600


def clock() -> dt.datetime:
    """The time windows and caps are counted at; tests move it instead of sleeping."""
    return timezone.now()


@dataclass(frozen=True, slots=True)
class Cap:
    meter: str  # "s12", "k5", "o3"
    span: str  # "m" / "h" rolling; "d" / "w" / "M" calendar; "" for concurrency
    window: int  # seconds, rolling spans only
    limit: int  # micro-USD, requests, or requests in flight
    unit: str  # USD, REQUESTS or CONCURRENT
    label: str  # names the cap in a refusal: "your plan's 5-hour window"

    def json(self) -> dict[str, Any]:
        return {
            "meter": self.meter,
            "span": self.span,
            "window": self.window,
            "limit": self.limit,
            "unit": self.unit,
        }


def bucket_start(span: str, when: dt.datetime) -> dt.datetime:
    """The start of the bucket of SPAN that WHEN falls in (UTC)."""
    when = when.astimezone(dt.UTC)
    if span in SPAN_SECONDS:
        size = SPAN_SECONDS[span]
        return dt.datetime.fromtimestamp(int(when.timestamp()) // size * size, dt.UTC)
    day = when.replace(hour=0, minute=0, second=0, microsecond=0)
    if span == "d":
        return day
    if span == "w":
        return day - dt.timedelta(days=day.weekday())
    if span == "M":
        return day.replace(day=1)
    raise ValueError(f"unknown span {span!r}")


def next_start(span: str, start: dt.datetime) -> dt.datetime:
    """The start of the bucket after the one starting at START."""
    if span in SPAN_SECONDS:
        return start + dt.timedelta(seconds=SPAN_SECONDS[span])
    if span == "d":
        return start + dt.timedelta(days=1)
    if span == "w":
        return start + dt.timedelta(days=7)
    if span == "M":
        return (start + dt.timedelta(days=32)).replace(day=1)
    raise ValueError(f"unknown span {span!r}")


def counted_since(cap: Cap, now: dt.datetime) -> dt.datetime:
    """Buckets starting at or after this time count towards CAP at NOW."""
    if cap.span in SPAN_SECONDS:
        # A bucket counts until its end is cap.window old.
        return bucket_start(cap.span, now - dt.timedelta(seconds=cap.window))
    return bucket_start(cap.span, now)


def key_caps(
    *,
    key_id: int,
    organization_id: int,
    key: dict[str, int | None],
    org: dict[str, int | None],
) -> tuple[Cap, ...]:
    """The caps of a key and its organization, from their fields (`requests_per_day`,
    `max_concurrent`, `spend_cap_day`, `spend_cap_week`, `spend_cap_month`)."""
    caps: list[Cap] = []
    for meter, fields, whose in (
        (f"k{key_id}", key, "this key"),
        (f"o{organization_id}", org, "your organization"),
    ):
        if fields.get("max_concurrent"):
            caps.append(
                Cap(
                    meter,
                    "",
                    0,
                    int(fields["max_concurrent"] or 0),
                    CONCURRENT,
                    f"requests in flight at once for {whose}",
                )
            )
        if fields.get("requests_per_day"):
            caps.append(
                Cap(
                    meter,
                    "d",
                    0,
                    int(fields["requests_per_day"] or 0),
                    REQUESTS,
                    f"requests per day for {whose}",
                )
            )
        for span, name, label in (
            ("d", "spend_cap_day", "day"),
            ("w", "spend_cap_week", "week"),
            ("M", "spend_cap_month", "month"),
        ):
            if fields.get(name):
                caps.append(
                    Cap(
                        meter,
                        span,
                        0,
                        int(fields[name] or 0),
                        USD,
                        f"spend per {label} for {whose}",
                    )
                )
    return tuple(caps)
