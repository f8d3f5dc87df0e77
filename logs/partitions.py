"""Daily partitions of the request log on PostgreSQL: created ahead, dropped past retention.

`logs_requestlog` is range-partitioned on `created_at`, one partition per UTC day
(`logs_requestlog_p20261204`), plus a DEFAULT partition that takes any row no daily
partition covers, so an insert never fails for want of one. Beat creates the partitions
of today and the next `PARTITIONS_AHEAD` days; creating a day whose rows already sit in
the default partition moves them in the same transaction. Retention drops whole daily
partitions once their day is past the cutoff and rolled up into `DailyUsage`; the rest
(the boundary day, the default partition) is purged row by row (logs/services.py).

The embedded SQLite mode keeps one plain table: every function here is a no-op there.
Identifiers are the table's own name plus a date's digits, quoted by the backend.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from django.db import connection, transaction
from django.db.backends.utils import CursorWrapper
from django.utils import timezone

from logs.models import RequestLog, RolledUpDay

TABLE = RequestLog._meta.db_table
DEFAULT_PARTITION = f"{TABLE}_default"
PARTITIONS_AHEAD = 7  # days after today that always have their partition
# DDL on the log waits at most this long for a lock, then gives up until the next run:
# a lock request queued behind a long dashboard query would stall every relay insert.
LOCK_TIMEOUT = "5s"
_DAILY = re.compile(rf"^{TABLE}_p(\d{{8}})$")


@dataclass(frozen=True, slots=True)
class Partition:
    name: str
    day: dt.date


def _q(name: str) -> str:
    return connection.ops.quote_name(name)


def _bound(day: dt.date) -> str:
    """A day's start as a timestamptz literal (DDL takes no parameters)."""
    return f"'{day.isoformat()} 00:00:00+00'"


def partition_name(day: dt.date) -> str:
    return f"{TABLE}_p{day:%Y%m%d}"


def partitioned() -> bool:
    """Whether the request log is a partitioned table (PostgreSQL after logs/0012)."""
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [_q(TABLE)])
        row = cursor.fetchone()
    return row is not None and row[0] == "p"


def request_log_partitions() -> list[Partition]:
    """The daily partitions, oldest first (not the default partition)."""
    if not partitioned():
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = to_regclass(%s)",
            [_q(TABLE)],
        )
        return _daily([row[0] for row in cursor.fetchall()])


def _daily(names: list[str]) -> list[Partition]:
    """The daily tables among NAMES, oldest first."""
    found = []
    for name in names:
        match = _DAILY.match(name)
        if match:
            found.append(Partition(name, dt.datetime.strptime(match[1], "%Y%m%d").date()))  # noqa: DTZ007
    return sorted(found, key=lambda p: p.day)


def _columns(cursor: CursorWrapper) -> str:
    cursor.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s)"
        " AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        [_q(TABLE)],
    )
    return ", ".join(_q(row[0]) for row in cursor.fetchall())


def create_partition(cursor: CursorWrapper, day: dt.date) -> int:
    """Create DAY's partition, moving the default partition's rows of that day into it;
    returns the rows moved. Run inside a transaction (the move and the attach commit
    together); the caller checks that it does not exist yet."""
    name, parent, default = _q(partition_name(day)), _q(TABLE), _q(DEFAULT_PARTITION)
    cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
    # Inserts of that day wait until the attach (they would land in the default again);
    # other days' inserts go to their own partitions and do not wait.
    cursor.execute(f"LOCK TABLE {default} IN SHARE ROW EXCLUSIVE MODE")
    cursor.execute(f"CREATE TABLE {name} (LIKE {parent} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
    columns = _columns(cursor)
    cursor.execute(
        f"WITH moved AS (DELETE FROM {default} WHERE created_at >= %s AND created_at < %s"  # noqa: S608
        f" RETURNING {columns}) INSERT INTO {name} ({columns}) SELECT {columns} FROM moved",
        [_day_start(day), _day_start(day + dt.timedelta(days=1))],
    )
    moved: int = cursor.rowcount
    cursor.execute(
        f"ALTER TABLE {parent} ATTACH PARTITION {name}"
        f" FOR VALUES FROM ({_bound(day)}) TO ({_bound(day + dt.timedelta(days=1))})"
    )
    return max(moved, 0)


def _day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)


def request_log_partitions_ensure(
    *, today: dt.date | None = None, ahead: int = PARTITIONS_AHEAD
) -> list[dt.date]:
    """Create the missing daily partitions from TODAY to TODAY + AHEAD (UTC); returns
    their days. Each is its own transaction; safe to run concurrently (a partition
    another run created first is skipped)."""
    if not partitioned():
        return []
    today = today or timezone.now().astimezone(dt.UTC).date()
    existing = {p.day for p in request_log_partitions()}
    created = []
    for n in range(ahead + 1):
        day = today + dt.timedelta(days=n)
        if day in existing:
            continue
        with transaction.atomic(), connection.cursor() as cursor:
            # One creator at a time: the loser sees the partition and skips it.
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [TABLE])
            cursor.execute("SELECT to_regclass(%s) IS NULL", [_q(partition_name(day))])
            row = cursor.fetchone()
            if row is None or not row[0]:
                continue
            create_partition(cursor, day)
        created.append(day)
    return created


def request_log_partitions_drop(*, before: dt.date) -> tuple[list[dt.date], int]:
    """Drop the daily partitions of days before BEFORE that are rolled up into
    `DailyUsage` (or empty); returns their days and the rows they held as rolled up.
    A day not rolled up yet keeps its partition: a day is never dropped unsummed."""
    if not partitioned():
        return [], 0
    rolled = dict(RolledUpDay.objects.filter(day__lt=before).values_list("day", "source_rows"))
    dropped: list[dt.date] = []
    rows = 0
    for part in request_log_partitions():
        if part.day >= before:
            break
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
            # Detaching locks the parent, then the partition: take the parent first, as
            # every query does (no deadlock), and before the emptiness check, so no row
            # arrives in between. (DETACH CONCURRENTLY is not allowed next to a default
            # partition.) Held for a catalog change only: the files go in the DROP below.
            cursor.execute(f"LOCK TABLE ONLY {_q(TABLE)} IN ACCESS EXCLUSIVE MODE")
            if part.day not in rolled:
                cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {_q(part.name)})")  # noqa: S608
                row = cursor.fetchone()
                if row is None or row[0]:
                    continue
            cursor.execute(f"ALTER TABLE {_q(TABLE)} DETACH PARTITION {_q(part.name)}")
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE {_q(part.name)}")  # no longer the log's: no wait
        dropped.append(part.day)
        rows += rolled.get(part.day, 0)
    # A day detached by an earlier run whose DROP failed (or that was killed in between)
    # is no partition any more, so the loop above never sees it again.
    for part in _detached(before):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE {_q(part.name)}")
        dropped.append(part.day)
        rows += rolled.get(part.day, 0)
    return sorted(dropped), rows


def _detached(before: dt.date) -> list[Partition]:
    """Daily tables of days before BEFORE that are not partitions of the log: detached
    by retention (rolled up or empty) and not dropped. A day's table is only ever created
    and attached in one transaction (create_partition), so no other table has the name."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_class c WHERE c.relkind = 'r' AND NOT c.relispartition"
            " AND c.relnamespace = (SELECT relnamespace FROM pg_class WHERE oid = to_regclass(%s))"
            " AND starts_with(c.relname, %s)",
            [_q(TABLE), f"{TABLE}_p"],
        )
        return [p for p in _daily([row[0] for row in cursor.fetchall()]) if p.day < before]
