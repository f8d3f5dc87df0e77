"""Bench-only: the per-stage breakdown at concurrency 1 from benchmarks/staged_app.py's
records, and the py-spy profile's top functions by own time."""

from __future__ import annotations

import collections
import dataclasses
import json
import re
import statistics
import urllib.request
from pathlib import Path
from typing import Any

# (shown stage, the recorded stages it sums; a "-" entry is subtracted), in request order.
SHOWN: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("authenticate", ("authenticate",)),
    ("read body and parse", ("read body", "parse")),
    ("authorize and rate limit", ("authorize", "rate limit")),
    ("route and price", ("route and price",)),
    ("hold", ("hold",)),
    ("connect / first byte upstream", ("upstream first byte",)),
    ("upstream body, meter, cost", ("upstream body, meter, write", "-write the answer")),
    ("write the answer", ("write the answer",)),
)
SETTLE = "settle (after the answer)"


def fetch(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310  (127.0.0.1)
        data: dict[str, Any] = json.loads(response.read())
    return data


def _value(record: dict[str, int], parts: tuple[str, ...]) -> int:
    total = 0
    for part in parts:
        if part.startswith("-"):
            total -= record.get(part[1:], 0)
        else:
            total += record.get(part, 0)
    return total


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))] if ordered else 0.0


def _rows(
    records: list[dict[str, int]], shown: tuple[tuple[str, tuple[str, ...]], ...]
) -> list[tuple[str, float, float]]:
    """(stage, median µs, p90 µs) of each SHOWN stage over RECORDS."""
    rows = []
    for name, parts in shown:
        values = [_value(r, parts) / 1000 for r in records]
        rows.append((name, statistics.median(values or [0]), _pct(values, 90)))
    return rows


@dataclasses.dataclass
class Breakdown:
    requests: int
    rows: list[tuple[str, float, float]]  # stage, median µs, p90 µs
    in_process_us: float  # median of (ASGI app - settle): request in to answer sent
    handler_us: float  # median of (relay handler - settle)
    settle_us: float
    unaccounted_in_process_us: float  # median of in-process minus the shown stages
    overhead_ns: float
    wraps_per_request: float


def breakdown(data: dict[str, Any]) -> Breakdown:
    records: list[dict[str, int]] = [r for r in data["records"] if "relay handler" in r]
    rows = _rows(records, SHOWN)
    settle = [r.get(SETTLE, 0) / 1000 for r in records]
    in_process = [(r["asgi app"] - r.get(SETTLE, 0)) / 1000 for r in records]
    handler = [(r["relay handler"] - r.get(SETTLE, 0)) / 1000 for r in records]
    rest = [
        (r["asgi app"] - r.get(SETTLE, 0) - sum(_value(r, p) for _, p in SHOWN)) / 1000
        for r in records
    ]
    wraps = [r.get("#", 0) for r in records]
    return Breakdown(
        requests=len(records),
        rows=rows,
        in_process_us=statistics.median(in_process or [0]),
        handler_us=statistics.median(handler or [0]),
        settle_us=statistics.median(settle or [0]),
        unaccounted_in_process_us=statistics.median(rest or [0]),
        overhead_ns=float(data.get("overhead_ns", 0.0)),
        wraps_per_request=statistics.fmean(wraps) if wraps else 0.0,
    )


FIRST_CHUNK = "first chunk sent"
# The stages a stream passes before its first chunk goes out (no answer to write, no
# upstream body read whole).
STREAM_SHOWN = SHOWN[:6]


@dataclasses.dataclass
class StreamBreakdown:
    requests: int
    rows: list[tuple[str, float, float]]  # stage, median µs, p90 µs
    first_chunk_us: float  # median: request in to the first chunk sent, in process
    unaccounted_us: float  # median of that minus the shown stages


def stream_breakdown(data: dict[str, Any]) -> StreamBreakdown:
    """Where a stream's time to first byte goes, from the staged app's records of
    streaming requests (those with a first chunk)."""
    records: list[dict[str, int]] = [r for r in data["records"] if FIRST_CHUNK in r]
    rows = _rows(records, STREAM_SHOWN)
    first = [r[FIRST_CHUNK] / 1000 for r in records]
    rest = [(r[FIRST_CHUNK] - sum(_value(r, p) for _, p in STREAM_SHOWN)) / 1000 for r in records]
    return StreamBreakdown(
        requests=len(records),
        rows=rows,
        first_chunk_us=statistics.median(first or [0]),
        unaccounted_us=statistics.median(rest or [0]),
    )


# py-spy --format raw: "frame;frame;...;leaf COUNT", a frame "function (path:line)".
_FRAME_LINE = re.compile(r":\d+\)$")


def top_own_time(raw: Path, count: int) -> tuple[int, list[tuple[str, int]]]:
    """(samples, the COUNT leaf functions with the most samples), lines folded per function."""
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        leaf = _FRAME_LINE.sub(")", stack.rsplit(";", 1)[-1].strip())
        own[leaf] += int(n)
        total += int(n)
    return total, own.most_common(count)
