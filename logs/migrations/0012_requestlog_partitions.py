"""The request log becomes a table partitioned by UTC day on PostgreSQL (logs/partitions.py).

A partitioned table's unique constraints must include the partition key, so the primary
key becomes (id, created_at) and the request id's uniqueness (request_id, created_at);
docs/architecture.md says why that still settles a request once. Django's state is
unchanged (`unique=True` on request_id): the embedded SQLite mode keeps one plain table.
Existing rows are copied into partitions covering their days.
"""

import datetime as dt
import re

from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.backends.utils import CursorWrapper
from django.db.migrations.state import StateApps
from django.utils import timezone

from logs import partitions

TABLE = partitions.TABLE
OLD = f"{TABLE}_plain"
KEEP_NAMES = (f"{TABLE}_pkey", f"{TABLE}_request_id_key")  # rebuilt with created_at


def _q(name: str) -> str:
    return f'"{name}"'


def _index_definitions(cursor: CursorWrapper, table: str) -> list[str]:
    """CREATE INDEX statements of TABLE's plain indexes (not its keys), for the new table."""
    cursor.execute(
        "SELECT c.relname, pg_get_indexdef(c.oid) FROM pg_index i"
        " JOIN pg_class c ON c.oid = i.indexrelid"
        " WHERE i.indrelid = to_regclass(%s)"
        " AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = c.oid)",
        [_q(table)],
    )
    on_old = re.compile(rf' ON (ONLY )?(\S+\.)?"?{table}"? ')
    return [on_old.sub(f" ON {_q(TABLE)} ", d, count=1) for _, d in cursor.fetchall()]


def _columns(cursor: CursorWrapper, table: str) -> str:
    cursor.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s)"
        " AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        [_q(table)],
    )
    return ", ".join(_q(row[0]) for row in cursor.fetchall())


def _rebuild(cursor: CursorWrapper, *, partitioned: bool) -> None:
    """Copy the log into a new table, partitioned or plain, under the same name."""
    cursor.execute(f"LOCK TABLE {_q(TABLE)} IN ACCESS EXCLUSIVE MODE")
    cursor.execute(f"ALTER TABLE {_q(TABLE)} RENAME TO {_q(OLD)}")
    indexes = _index_definitions(cursor, OLD)
    # The old key and its index names must be free for the new table.
    cursor.execute(f"ALTER TABLE {_q(OLD)} DROP CONSTRAINT {_q(KEEP_NAMES[0])}")
    cursor.execute(f"ALTER TABLE {_q(OLD)} DROP CONSTRAINT IF EXISTS {_q(KEEP_NAMES[1])}")
    cursor.execute(
        "SELECT conname FROM pg_constraint WHERE conrelid = to_regclass(%s) AND contype = 'u'",
        [_q(OLD)],
    )
    for (name,) in cursor.fetchall():  # (request_id, created_at) when going back
        cursor.execute(f"ALTER TABLE {_q(OLD)} DROP CONSTRAINT {_q(name)}")
    for (name,) in _plain_index_names(cursor, OLD):
        cursor.execute(f"DROP INDEX {_q(name)}")
    partition_by = " PARTITION BY RANGE (created_at)" if partitioned else ""
    cursor.execute(
        f"CREATE TABLE {_q(TABLE)} (LIKE {_q(OLD)} INCLUDING DEFAULTS INCLUDING CONSTRAINTS"
        f" INCLUDING IDENTITY){partition_by}"
    )
    if partitioned:
        cursor.execute(
            f"ALTER TABLE {_q(TABLE)} ADD CONSTRAINT {_q(KEEP_NAMES[0])}"
            " PRIMARY KEY (id, created_at)"
        )
        cursor.execute(
            f"ALTER TABLE {_q(TABLE)} ADD CONSTRAINT {_q(f'{TABLE}_request_id_created_at_key')}"
            " UNIQUE (request_id, created_at)"
        )
        cursor.execute(
            f"CREATE TABLE {_q(partitions.DEFAULT_PARTITION)} PARTITION OF {_q(TABLE)} DEFAULT"
        )
        cursor.execute(
            f"SELECT DISTINCT (created_at AT TIME ZONE 'UTC')::date FROM {_q(OLD)}"  # noqa: S608
        )
        today = timezone.now().astimezone(dt.UTC).date()
        days = {row[0] for row in cursor.fetchall()}
        days |= {today + dt.timedelta(days=n) for n in range(partitions.PARTITIONS_AHEAD + 1)}
        for day in sorted(days):
            partitions.create_partition(cursor, day)
    else:
        cursor.execute(
            f"ALTER TABLE {_q(TABLE)} ADD CONSTRAINT {_q(KEEP_NAMES[0])} PRIMARY KEY (id)"
        )
        cursor.execute(
            f"ALTER TABLE {_q(TABLE)} ADD CONSTRAINT {_q(KEEP_NAMES[1])} UNIQUE (request_id)"
        )
    columns = _columns(cursor, TABLE)
    cursor.execute(f"INSERT INTO {_q(TABLE)} ({columns}) SELECT {columns} FROM {_q(OLD)}")  # noqa: S608
    cursor.execute(f"SELECT coalesce(max(id), 0) + 1 FROM {_q(OLD)}")  # noqa: S608
    row = cursor.fetchone()
    cursor.execute(f"ALTER TABLE {_q(TABLE)} ALTER COLUMN id RESTART WITH {int(row[0])}")
    cursor.execute(f"DROP TABLE {_q(OLD)}")
    for statement in indexes:  # after the copy: built once, not row by row
        cursor.execute(statement)


def _plain_index_names(cursor: CursorWrapper, table: str) -> list[tuple[str]]:
    cursor.execute(
        "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
        " WHERE i.indrelid = to_regclass(%s)"
        " AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = c.oid)",
        [_q(table)],
    )
    return list(cursor.fetchall())


def partition(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            _rebuild(cursor, partitioned=True)


def unpartition(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            _rebuild(cursor, partitioned=False)


class Migration(migrations.Migration):
    dependencies = [("logs", "0011_anomalies")]

    operations = [migrations.RunPython(partition, unpartition)]
