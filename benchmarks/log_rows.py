"""Bench-only: fill logs_requestlog with N synthetic rows through COPY, fast.

The column list is read from the database, so the loader follows migrations: known columns
get plausible values, any other NOT NULL column without a default gets its type's zero.
Works on a plain or a partitioned table; when partitioned, rows only go into the days that
have a partition (after calling the project's partition-ensure function if there is one).
Loaded rows carry request ids starting with BULK_PREFIX so the books check can skip them.
"""

from __future__ import annotations

import datetime as dt
import importlib
import re
import time
from typing import Any

import psycopg

TABLE = "logs_requestlog"
BULK_PREFIX = "bulkload_"
SPREAD_DAYS = 30
CHUNK = 50_000

_KNOWN: dict[str, str] = {
    "client_request_id": "",
    "endpoint": "chat/completions",
    "model": "gpt-4o-mini",
    "upstream_model": "gpt-4o-mini",
    "stream": "f",
    "status_code": "200",
    "error_code": "",
    "prompt_tokens": "12",
    "completion_tokens": "40",
    "cost": "0",
    "latency_ms": "350",
    "ttfb_ms": "120",
    "attempts": "1",
    "user_agent": "bench/1",
    "dropped_params": "",
    "usage_estimated": "f",
}
_ZERO = {
    "boolean": "f",
    "text": "",
    "character varying": "",
    "jsonb": "{}",
    "json": "{}",
    "inet": "127.0.0.1",
}


def _columns(conn: psycopg.Connection[Any]) -> list[tuple[str, str, bool, bool]]:
    """(name, type, nullable, has default) of the table's columns."""
    rows = conn.execute(
        "SELECT column_name, data_type, is_nullable = 'YES',"
        " column_default IS NOT NULL OR is_identity = 'YES'"
        " FROM information_schema.columns WHERE table_name = %s ORDER BY ordinal_position",
        (TABLE,),
    ).fetchall()
    if not rows:
        raise RuntimeError(f"no table {TABLE}")
    return [(str(a), str(b), bool(c), bool(d)) for a, b, c, d in rows]


def _partition_ranges(conn: psycopg.Connection[Any]) -> list[tuple[dt.datetime, dt.datetime]]:
    """The [from, to) ranges of the table's partitions; [] if it is not partitioned."""
    kind = conn.execute("SELECT relkind FROM pg_class WHERE relname = %s", (TABLE,)).fetchone()
    if kind is None or kind[0] != "p":
        return []
    bounds = conn.execute(
        "SELECT pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i"
        " JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent"
        " WHERE p.relname = %s",
        (TABLE,),
    ).fetchall()
    ranges = []
    for (expr,) in bounds:
        found = re.findall(r"'([^']+)'", expr or "")
        if len(found) == 2:
            low, high = (dt.datetime.fromisoformat(x) for x in found)
            if low.tzinfo is None:
                low, high = low.replace(tzinfo=dt.UTC), high.replace(tzinfo=dt.UTC)
            ranges.append((low, high))
    return sorted(ranges)


def partitioned(dsn: str) -> bool:
    with psycopg.connect(dsn) as conn:
        kind = conn.execute("SELECT relkind FROM pg_class WHERE relname = %s", (TABLE,)).fetchone()
    return kind is not None and kind[0] == "p"


def ensure_partitions(days: int = SPREAD_DAYS) -> str:
    """Create the daily partitions of the last DAYS days through logs' own function, if the
    project has one (needs Django set up): rows of days without one would all go to the
    default partition, which no real deployment fills."""
    try:
        partitions = importlib.import_module("logs.partitions")
    except ImportError:
        return "no logs.partitions module"
    ensure = getattr(partitions, "request_log_partitions_ensure", None)
    if ensure is None:
        return "no logs.partitions.request_log_partitions_ensure"
    start = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=days)
    ahead = days + int(getattr(partitions, "PARTITIONS_AHEAD", 7))
    created = ensure(today=start, ahead=ahead)
    return f"request_log_partitions_ensure created {len(created)} daily partitions"


def load(dsn: str, rows: int, *, organization_id: int) -> tuple[float, str]:
    """COPY ROWS rows spread over the last SPREAD_DAYS days; (seconds, where they went)."""
    started = time.monotonic()
    now = dt.datetime.now(dt.UTC)
    with psycopg.connect(dsn, autocommit=True) as conn:
        columns = _columns(conn)
        ranges = _partition_ranges(conn)
        if ranges:
            ranges = [
                (max(lo, now - dt.timedelta(days=SPREAD_DAYS)), min(hi, now)) for lo, hi in ranges
            ]
            ranges = [(lo, hi) for lo, hi in ranges if lo < hi]
            if not ranges:
                raise RuntimeError(f"{TABLE} is partitioned but has no partition for the past")
            where = f"partitioned: {len(ranges)} partitions of the last {SPREAD_DAYS} days"
        else:
            ranges = [(now - dt.timedelta(days=SPREAD_DAYS), now)]
            where = f"one table, spread over the last {SPREAD_DAYS} days"
        fixed: dict[str, str] = {}
        for name, kind, nullable, default in columns:
            if name in _KNOWN:
                fixed[name] = _KNOWN[name]
            elif name == "organization_id":
                fixed[name] = str(organization_id)
            elif name not in ("id", "created_at", "request_id") and not nullable:
                fixed[name] = _ZERO.get(kind, "0") if not default else "\\N"
            elif name not in ("id", "created_at", "request_id"):
                fixed[name] = "\\N"
        # A NOT NULL column with a default must not get \N: leave it out of the list.
        names = [
            c for c, _, nullable, default in columns
            if not (default and (c == "id" or (not nullable and fixed.get(c) == "\\N")))
        ]  # fmt: skip
        span = sum((hi - lo).total_seconds() for lo, hi in ranges)
        sql = f"COPY {TABLE} ({', '.join(names)}) FROM STDIN"  # names from the catalog
        with conn.cursor() as cur, cur.copy(sql) as copy:
            done = 0
            while done < rows:
                count = min(CHUNK, rows - done)
                offset = span * done / rows
                for lo, hi in ranges:
                    length = (hi - lo).total_seconds()
                    if offset < length:
                        at = lo + dt.timedelta(seconds=offset)
                        break
                    offset -= length
                else:
                    at = ranges[-1][1] - dt.timedelta(seconds=1)
                stamp = at.isoformat()
                parts_before: list[str] = []
                parts_after: list[str] = []
                seen_id = False
                for c in names:
                    if c == "request_id":
                        seen_id = True
                        continue
                    value = stamp if c == "created_at" else fixed[c]
                    (parts_after if seen_id else parts_before).append(value)
                head = "\t".join(parts_before) + ("\t" if parts_before else "") + BULK_PREFIX
                tail = ("\t" if parts_after else "") + "\t".join(parts_after) + "\n"
                copy.write("".join(f"{head}{i}{tail}" for i in range(done, done + count)))
                done += count
    return time.monotonic() - started, where


def vacuum_analyze(dsn: str) -> float:
    started = time.monotonic()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"VACUUM (ANALYZE) {TABLE}")
    return time.monotonic() - started
