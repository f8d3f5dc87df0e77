"""Dashboard pages and the retention purge at scale, on PostgreSQL.

    .venv/bin/python benchmarks/dashboard_pages.py [--rows N] [--old-rows N] [--runs R]

Starts a throwaway PostgreSQL + Redis (as benchmarks/relay_overhead.py does), migrates,
creates one organization with 10 keys, creates the request log's daily partitions of the
last 30 days (as beat would have, day by day) and loads --rows (default 1,000,000) request
log rows over them with COPY; the days past the rollup grace are rolled into DailyUsage,
as the hourly job would have done. Then it prints, as the median and worst of --runs
renders through Django's full request stack (middleware, session, template):

1. /dashboard/logs/ first page, a filtered page (one model, errors only), a page 200 pages
   deep by its cursor (when there are that many), a cost-sorted page, and the CSV export
   of the last day, read to its end;
2. /dashboard/ (overview);
3. the retention purge: --old-rows (default: --rows) rows older than retention, in their
   daily partitions, rolled up, then purged as the hourly task does (whole partitions
   dropped, the rest deleted row by row) while another connection inserts log rows as the
   relay does; it prints both steps' durations and the inserts' p50/p99/max latency
   before and during the purge.

Targets (issues 7 and 18): pages under 300 ms, the same with 0 and with 10 million rows;
the purge does not block inserts (their p99 stays in the same range as before the purge).
Reported, not asserted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import os
import random
import secrets
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.relay_overhead import BenchError, Databases  # noqa: E402

MODELS = ["gpt-4o-mini", "gpt-4o", "claude-sonnet-4", "gemini-2.5-flash", "o3"]
PAGE_TARGET_MS = 300.0


def _copy_logs(dsn: str, org_id: int, key_ids: list[int], rows: int, *, start: dt.datetime,
               span: dt.timedelta, prefix: str) -> None:  # fmt: skip
    import psycopg

    rng = random.Random(1)
    columns = (
        "created_at, request_id, client_request_id, organization_id, api_key_id, channel_id, "
        "endpoint, model, upstream_model, stream, status_code, error_code, prompt_tokens, "
        "completion_tokens, cache_read_tokens, cache_write_tokens, cache_write_1h_tokens, "
        "reasoning_tokens, usage_estimated, cost, latency_ms, ttfb_ms, attempts, client_ip, "
        "user_agent, dropped_params"
    )
    if rows <= 0:
        return
    # COPY's text format written in blocks: formatting each row in Python is what limits
    # the load (write_row adapts value by value, several times slower).
    step = span / rows
    base = start.timestamp()
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        with cur.copy(f"COPY logs_requestlog ({columns}) FROM STDIN") as copy:
            lines: list[str] = []
            for n in range(rows):
                at = dt.datetime.fromtimestamp(base + step.total_seconds() * n, dt.UTC)
                status = 200 if rng.random() > 0.03 else rng.choice([429, 500, 502])
                lines.append(
                    f"{at.isoformat()}\t{prefix}{n:09d}\t\t{org_id}\t{rng.choice(key_ids)}\t1"
                    f"\tchat/completions\t{rng.choice(MODELS)}\t\tf\t{status}\t"
                    f"\t{rng.randrange(2000)}\t{rng.randrange(800)}\t0\t0\t0\t0\tf"
                    f"\t{rng.randrange(20_000)}\t{rng.randrange(100, 4000)}\t\\N\t1"
                    "\t203.0.113.7\tbench/1.0\t\n"
                )
                if len(lines) == 10_000:
                    copy.write("".join(lines))
                    lines = []
            copy.write("".join(lines))
        conn.commit()
        cur.execute("ANALYZE logs_requestlog")
        conn.commit()


def _time(fn: Callable[[], object], runs: int) -> tuple[float, float]:
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples), max(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--old-rows", type=int, default=None, help="default: --rows")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()

    base = Path(tempfile.mkdtemp(prefix="tokenhub-dash-bench-"))
    databases = Databases(base, keep=False)
    try:
        dsn, redis_url = databases.start()
        os.environ.update(
            DATABASE_URL=dsn, REDIS_URL=redis_url, DEBUG="0", TOKENHUB_VAR_DIR=str(base),
            SECRET_KEY=secrets.token_urlsafe(50), ALLOWED_HOSTS="testserver",
            DJANGO_SETTINGS_MODULE="tokenhub.settings",
        )  # fmt: skip
        from cryptography.fernet import Fernet

        os.environ["TOKENHUB_ENCRYPTION_KEYS"] = Fernet.generate_key().decode()
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        old_rows = args.rows if args.old_rows is None else args.old_rows
        return _run(dsn, args.rows, old_rows, args.runs)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        databases.stop()


def _run(dsn: str, rows: int, old_rows: int, runs: int) -> int:
    from asgiref.sync import async_to_sync
    from django.conf import settings
    from django.db import connection
    from django.http import StreamingHttpResponse
    from django.test import Client
    from django.utils import timezone

    from accounts.selectors import organization_personal
    from accounts.services import key_create, user_create
    from logs.models import RequestLog
    from logs.partitions import request_log_partitions_drop, request_log_partitions_ensure
    from logs.services import daily_usage_rollup_due, request_logs_purge

    user = user_create(email="bench@example.com", password=secrets.token_urlsafe(16))
    org = organization_personal(user=user)
    keys = [key_create(organization=org, created_by=user, name=f"k{i}")[0].pk for i in range(10)]
    now = timezone.now()
    request_log_partitions_ensure(today=(now - dt.timedelta(days=30)).date(), ahead=37)
    t0 = time.perf_counter()
    _copy_logs(dsn, org.pk, keys, rows, start=now - dt.timedelta(days=30),
               span=dt.timedelta(days=30), prefix="live")  # fmt: skip
    took = time.perf_counter() - t0
    print(f"loaded {rows:,} log rows in {took:.1f} s ({rows / max(took, 1e-9):,.0f} rows/s)")
    t0 = time.perf_counter()
    daily_usage_rollup_due()
    print(f"rolled up the finished days in {time.perf_counter() - t0:.1f} s")

    client = Client()
    client.force_login(user)

    def get(url: str, params: dict[str, str] | None = None) -> str:
        response = client.get(url, params or {})
        if response.status_code != 200:
            raise BenchError(f"{url} answered {response.status_code}")
        return response.content.decode()

    def export(url: str, params: dict[str, str]) -> int:
        response = client.get(url, params)
        if response.status_code != 200:
            raise BenchError(f"{url} answered {response.status_code}")
        chunks = getattr(response, "streaming_content", None)
        if not isinstance(response, StreamingHttpResponse) or not isinstance(chunks, AsyncIterable):
            raise BenchError(f"{url} did not stream asynchronously")

        async def drain() -> int:  # the export streams from an async generator
            return sum([len(chunk) async for chunk in chunks])

        return async_to_sync(drain)()

    cursor = ""
    for _ in range(200):
        page = get("/dashboard/logs/", {"cursor": cursor} if cursor else {})
        marker = 'rel="next" href="?cursor='
        if marker not in page:
            cursor = ""
            break
        cursor = page.split(marker, 1)[1].split('"', 1)[0]
    cases: list[tuple[str, str, dict[str, str]]] = [
        ("logs, first page", "/dashboard/logs/", {}),
        ("logs, model + errors", "/dashboard/logs/", {"model": "o3", "status": "error"}),
        ("logs, by cost (last day)", "/dashboard/logs/", {"sort": "-cost"}),
        ("overview", "/dashboard/", {}),
    ]
    if cursor:
        cases.insert(2, ("logs, page 201 by cursor", "/dashboard/logs/", {"cursor": cursor}))
    print(f"\n{'page':28} {'median ms':>10} {'worst ms':>10}  target < {PAGE_TARGET_MS:.0f} ms")
    for name, url, params in cases:
        get(url, params)  # warm
        median, worst = _time(functools.partial(get, url, params), runs)
        mark = "ok" if median < PAGE_TARGET_MS else "MISSED"
        print(f"{name:28} {median:10.1f} {worst:10.1f}  {mark}")
    # Sorted by time the explorer reads all time unless given a range: export the last day.
    day = {"format": "csv", "since": (now - dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")}
    size = export("/dashboard/logs/", day)
    median, worst = _time(lambda: export("/dashboard/logs/", day), runs)
    print(f"{'logs CSV, last day':28} {median:10.1f} {worst:10.1f}  ({size / 1e6:.1f} MB)")

    # --- purge under concurrent inserts ---------------------------------------------------
    old_start = now - dt.timedelta(days=400)
    request_log_partitions_ensure(today=old_start.date(), ahead=20)
    t0 = time.perf_counter()
    _copy_logs(dsn, org.pk, keys, old_rows, start=old_start, span=dt.timedelta(days=20),
               prefix="old")  # fmt: skip
    took = time.perf_counter() - t0
    print(f"\nloaded {old_rows:,} expired rows in {took:.1f} s")
    daily_usage_rollup_due()
    connection.close()
    stop = threading.Event()
    latencies: list[tuple[float, float]] = []  # (when, ms)

    def insert_loop() -> None:
        import psycopg

        with psycopg.connect(dsn, autocommit=True) as conn:
            n = 0
            while not stop.is_set():
                t = time.perf_counter()
                conn.execute(
                    "INSERT INTO logs_requestlog (created_at, request_id, client_request_id,"
                    " organization_id, endpoint, model, upstream_model, stream, status_code,"
                    " error_code, prompt_tokens, completion_tokens, cache_read_tokens,"
                    " cache_write_tokens, cache_write_1h_tokens, reasoning_tokens,"
                    " usage_estimated, cost, latency_ms, attempts, user_agent, dropped_params)"
                    " VALUES (now(), %s, '', %s, 'chat/completions', 'm',"
                    " '', false, 200, '', 1, 1, 0, 0, 0, 0, false, 1, 1, 1, '', '')",
                    (f"ins{n:09d}", org.pk),
                )
                latencies.append((t, (time.perf_counter() - t) * 1000))
                n += 1
                time.sleep(0.002)  # pacing of the synthetic relay writer, not synchronisation

    writer = threading.Thread(target=insert_loop)
    writer.start()
    time.sleep(2.0)  # a baseline of inserts before the purge starts
    purge_start = time.perf_counter()
    # What logs.tasks.purge_request_logs does once everything is rolled up.
    cutoff = timezone.now() - dt.timedelta(days=settings.LOG_RETENTION_DAYS)
    days, dropped = request_log_partitions_drop(before=cutoff.astimezone(dt.UTC).date())
    dropped_end = time.perf_counter()
    deleted = request_logs_purge()
    purge_end = time.perf_counter()
    stop.set()
    writer.join()

    def stats(samples: list[float]) -> str:
        if not samples:
            return "no samples"
        ordered = sorted(samples)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        median = statistics.median(ordered)
        return f"p50 {median:.2f} ms, p99 {p99:.2f} ms, max {ordered[-1]:.2f} ms (n={len(ordered)})"

    before = [ms for t, ms in latencies if t < purge_start]
    during = [ms for t, ms in latencies if purge_start <= t < purge_end]
    print(
        f"purge: dropped {len(days)} daily partitions ({dropped:,} rows) in"
        f" {dropped_end - purge_start:.2f} s, then deleted {deleted:,} rows one by one in"
        f" {purge_end - dropped_end:.2f} s"
    )
    print(f"  inserts before the purge: {stats(before)}")
    print(f"  inserts during the purge: {stats(during)}")
    left = RequestLog.objects.filter(created_at__lt=now - dt.timedelta(days=100)).count()
    print(f"  expired rows left: {left}")
    return 0 if left == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
