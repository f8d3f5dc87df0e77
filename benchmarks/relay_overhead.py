"""Relay overhead: what TokenHub adds on top of the upstream it forwards to (issue 18).

    .venv/bin/python benchmarks/relay_overhead.py [--duration S] [--concurrency N] [--quick]
        [--rate R] [--log-rows N] [--workers N] [--rounds N] [--no-profile] [--no-pin] [--keep]

Starts a throwaway PostgreSQL and Redis (the test suite's logic, tests/plugins/servers.py),
the fake upstream (tests/fakes/upstream.py, its own process, not recording requests) and
TokenHub in its production configuration (one uvicorn worker, uvloop + httptools, DEBUG=0,
PostgreSQL, Redis, full billing and request logging), creates a user, wallet credit, key,
channel and price through the CLI, and 1,000 more keys in 100 organizations through the
services, warms up, then measures with wrk (Debian package ``wrk``;
``scripts/ensure-test-servers.sh`` installs it), each TokenHub figure beside the direct
figure of the same run:

1. non-streaming chat at --concurrency: requests/s, p50/p99, worker CPU per request, one
   wallet (one key), then the same spread over the 1,000 keys (wrk rotates the header);
2. streaming chat, the same; plus time to first body byte of sequential streaming requests
   (a small aiohttp client, TokenHub and direct interleaved);
3. p50/p99 at a moderate, roughly fixed rate (--rate) and at concurrency 1; phases 1 and 2
   and concurrency 1 run --rounds times (3), and the figures are the median round's, each
   round printed (this machine is shared: the same phase can run at half speed a minute
   later);
4. a per-stage breakdown at concurrency 1, from a second worker started from
   benchmarks/staged_app.py (the same app with perf_counter timers around the pipeline),
   of non-streaming requests and of streams up to their first chunk;
5. a py-spy profile of the worker under saturating load (top functions by own time);
6. requests/s with --workers worker processes (2 by default);
7. the same figures again after --log-rows request-log rows were COPYed into PostgreSQL;
8. n_dead_tup of the wallet and key tables around every phase, the peak RSS, and the books:
   RequestLog rows = requests answered 200, every wallet's balance = the sum of its ledger
   entries, no holds left (PostgreSQL queried directly with psycopg).

Layout on a machine with two or more CPUs: the TokenHub worker is pinned to CPU 0 and
everything else (fake upstream, wrk, PostgreSQL, Redis, this script) to CPU 1, so the fake
upstream and the load generator share a core; the multi-worker phase is not pinned. wrk stops
issuing requests at the end of each phase and lets the ones in flight finish, so every
request sent is accounted for.

Exit status: 0 when the run completed and the correctness check passed (targets missed are
reported, not failed), 1 otherwise. Everything listens on 127.0.0.1 only and is stopped on
exit, Ctrl-C, errors and an overall time limit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import dataclasses
import functools
import json
import math
import os
import re
import secrets
import shutil
import signal
import statistics
import string
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make the repository importable
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import psycopg  # noqa: E402
from cryptography.fernet import Fernet  # noqa: E402

from benchmarks import log_rows, spread_keys, stage_report  # noqa: E402
from tests.plugins import servers  # noqa: E402

PYTHON = sys.executable
MODEL = "gpt-4o-mini"
EMAIL = "bench@example.com"
MODERATE_CONCURRENCY = 4
MODERATE_RATE = 200  # req/s in all: a quarter of the throughput target, far from saturation
STARTUP_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
SETTLE_TIMEOUT = 30.0
TTFB_LIMIT_S = 60.0
BACKGROUND_WARN_PCT = 10.0
WRK_GRACE_S = 1  # wrk runs this much longer than the load, so requests in flight finish

# Issue 18's targets.
TARGET_RPS = 1500.0
TARGET_CPU_MS = 0.65
TARGET_STREAM_RPS = 1000.0
TARGET_ADDED_C1_MS = 1.0
TARGET_ADDED_TTFB_MS = 1.0
TARGET_RSS_MB = 150.0
TARGET_SPREAD_RATIO = 0.5  # single wallet req/s over spread req/s, at least
# "Within noise": req/s within 10 %, added c=1 p50 within 0.25 ms or 10 %.
FLAT_RPS_NOISE = 0.10
FLAT_ADDED_NOISE_MS = 0.25
SPREAD_ORGS, SPREAD_KEYS = 100, 1000
DEFAULT_LOG_ROWS, QUICK_LOG_ROWS = 10_000_000, 100_000
PROFILE_TOP = 15

PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


class BenchError(Exception):
    """A failure that ends the run with a message rather than a traceback."""


class BenchTimeout(BenchError):
    pass


# --- processes ------------------------------------------------------------------------------


def _child_init(cpus: set[int] | None) -> Callable[[], None]:
    def init() -> None:
        # Dies with us even if we are SIGKILLed and our cleanup cannot run. SIGKILL, because
        # by then PostgreSQL is gone too and a graceful shutdown would wait for it.
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if cpus:
            os.sched_setaffinity(0, cpus)

    return init


@dataclasses.dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


class Processes:
    """Long-running children (fake upstream, TokenHub); stopped newest first."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.procs: list[Proc] = []

    def start(
        self, name: str, cmd: list[str], *, env: dict[str, str], cpus: set[int] | None
    ) -> Proc:
        log = self.logdir / f"{name}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                cmd,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches us only; we stop them in order
                preexec_fn=_child_init(cpus),
            )
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        while self.procs:
            self.stop(self.procs[-1])

    def stop(self, proc: Proc) -> None:
        """Graceful stop (uvicorn drains and settles), killed after STOP_TIMEOUT."""
        self.procs.remove(proc)
        if proc.popen.poll() is None:
            proc.popen.terminate()
            try:
                proc.popen.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait(STOP_TIMEOUT)


class Databases:
    """PostgreSQL + Redis through tests/plugins/servers.py, with its watchdog."""

    def __init__(self, base: Path, *, keep: bool) -> None:
        self.base = base
        self.keep = keep
        self.cleanup: Any = None
        self.watchdog: subprocess.Popen[bytes] | None = None

    def start(self) -> tuple[str, str]:
        pg_bindir = servers._find_pg_bindir()
        redis_server = shutil.which("redis-server")
        if pg_bindir is None or redis_server is None:
            raise BenchError(servers.MISSING_BINARIES)
        pg_port, redis_port = servers._free_ports(2)
        pg_dir, redis_dir = self.base / "pg", self.base / "redis"
        pg_stop = [
            str(pg_bindir / "pg_ctl"), "stop", "-D", str(pg_dir / "data"),
            "-m", "immediate", "-w", "-t", str(int(STOP_TIMEOUT)), "-s",
        ]  # fmt: skip
        self.cleanup = servers._Cleanup(
            pg_stop=servers._as_pg_user(pg_stop),
            pg_pidfile=str(pg_dir / "data" / "postmaster.pid"),
            pg_cwd=str(pg_dir),
            redis_pidfile=str(redis_dir / "redis.pid"),
            dirs=[] if self.keep else [str(self.base)],
        )
        # Stops both if this process dies without cleaning up (its stdin pipe closes).
        self.watchdog = subprocess.Popen(
            [PYTHON, servers.__file__, "--watchdog", json.dumps(dataclasses.asdict(self.cleanup))],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd="/",
            start_new_session=True,
        )
        try:
            servers._start_postgres(pg_bindir, pg_dir, pg_port)
            servers._start_redis(redis_server, redis_dir, redis_port)
        except Exception as exc:  # pytest.UsageError carries the server's log tail
            raise BenchError(str(exc)) from None
        return (
            f"postgres://{servers.DB_USER}@127.0.0.1:{pg_port}/{servers.DB_NAME}",
            f"redis://127.0.0.1:{redis_port}/0",
        )

    def stop(self) -> None:
        if self.cleanup is not None:
            servers._cleanup(self.cleanup)
            self.cleanup = None
        if self.watchdog is not None:
            self.watchdog.kill()
            self.watchdog.wait()
            if self.watchdog.stdin is not None:
                self.watchdog.stdin.close()
            self.watchdog = None


def _wait_http(url: str, headers: dict[str, str], proc: Proc) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    request = urllib.request.Request(url, headers=headers)  # noqa: S310  (http://127.0.0.1)
    while True:
        if proc.popen.poll() is not None:
            raise BenchError(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.tail()}")
        try:
            with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise BenchError(f"{proc.name} did not answer {url}:\n{proc.tail()}")
        time.sleep(0.1)


def _manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [PYTHON, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    if result.returncode != 0:
        raise BenchError(f"manage.py {args[0]} failed:\n{result.stdout}{result.stderr}")
    return result.stdout.strip()


# --- /proc ----------------------------------------------------------------------------------


def _cpu_seconds(pid: int) -> float:
    """utime + stime of the whole process (all its threads)."""
    stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    fields = stat.rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of PID and its live children (uvicorn --workers N: its worker processes)."""
    total = _cpu_seconds(pid)
    for child in _children(pid):
        with contextlib.suppress(OSError):
            total += _cpu_seconds(child)
    return total


def _children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            found += [int(x) for x in (task / "children").read_text(encoding="utf-8").split()]
    return found


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text(encoding="utf-8").splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise BenchError("no VmHWM in /proc/PID/status")


def _core_times() -> dict[str, tuple[int, int]]:
    """Per CPU: (busy, total) jiffies from /proc/stat."""
    times: dict[str, tuple[int, int]] = {}
    for line in Path("/proc/stat").read_text(encoding="utf-8").splitlines():
        name, *values = line.split()
        if name.startswith("cpu") and name != "cpu":
            numbers = [int(v) for v in values]
            idle = numbers[3] + numbers[4]  # idle + iowait
            times[name] = (sum(numbers[:8]) - idle, sum(numbers[:8]))
    return times


def _background_load(pid: int, seconds: float = 1.0) -> tuple[str, float]:
    """Per-CPU busy share over SECONDS while no load runs: other processes' load.

    Our idle TokenHub worker's own CPU use is shown separately (it should be ~0).
    """
    before, cpu_before = _core_times(), _cpu_seconds(pid)
    time.sleep(seconds)
    after, cpu_after = _core_times(), _cpu_seconds(pid)
    worst = max(
        100 * (after[k][0] - before[k][0]) / max(1, after[k][1] - before[k][1]) for k in after
    )
    hub = 100 * (cpu_after - cpu_before) / seconds
    return f"{_core_usage(before, after)} (TokenHub worker {hub:.0f}%)", worst


def _core_usage(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]) -> str:
    parts = []
    for name in sorted(after):
        busy = after[name][0] - before[name][0]
        total = after[name][1] - before[name][1]
        parts.append(f"{name} {100 * busy / total:.0f}%" if total else f"{name} ?")
    return ", ".join(parts)


# --- wrk ------------------------------------------------------------------------------------

# The load stops at DEADLINE (CLOCK_MONOTONIC, as Python's time.monotonic): each connection
# then waits an hour before its next request, so wrk ends with nothing in flight. `delay` is
# called after every response.
WRK_SCRIPT = string.Template("""
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]]
local ts = ffi.new("bench_timespec")
local function now()
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) / 1e9
end

wrk.method = "POST"
wrk.body = [==[$body]==]
$headers
local deadline = $deadline
local connections = $connections
local pause = $pause
idle = 0
drained = false

function delay()
  if now() < deadline then
    return pause
  end
  idle = idle + 1
  if idle >= connections then
    drained = true
  end
  return 3600000
end

local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

function done(summary, latency, requests)
  local all = true
  for _, t in ipairs(threads) do
    if not t:get("drained") then
      all = false
    end
  end
  local e = summary.errors
  io.write(string.format(
    "WRK_RESULT {\\"requests\\": %d, \\"connect\\": %d, \\"read\\": %d, \\"write\\": %d, " ..
    "\\"status\\": %d, \\"timeout\\": %d, \\"p50_us\\": %d, \\"p99_us\\": %d, " ..
    "\\"mean_us\\": %.1f, \\"drained\\": %s}\\n",
    summary.requests, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50.0), latency:percentile(99.0), latency.mean, tostring(all)))
end
""")


@dataclasses.dataclass
class Load:
    """One wrk run."""

    requests: int
    non2xx: int
    socket_errors: int
    p50_ms: float
    p99_ms: float
    rps: float
    drained: bool
    concurrency: int
    cpu_ms_per_request: float | None = None
    cpu_share: float = math.nan  # the server's CPU seconds per second of load
    cores: str = ""

    @property
    def ok(self) -> int:
        return self.requests - self.non2xx


@dataclasses.dataclass
class Round:
    """One round of the phases that are repeated: each TokenHub phase beside its direct."""

    plain: tuple[Load, Load]  # (direct, TokenHub)
    spread: Load
    stream: tuple[Load, Load]
    c1: tuple[Load, Load]

    def added_c1(self) -> float:
        return self.c1[1].p50_ms - self.c1[0].p50_ms


def _median(rounds: list[Round], by: Callable[[Round], float]) -> Round:
    """The round whose BY is the median (the upper one of an even count)."""
    return sorted(rounds, key=by)[len(rounds) // 2]


@dataclasses.dataclass
class Target:
    name: str
    url: str
    headers: dict[str, str]
    pid: int | None = None  # the server process whose CPU time to measure


def _wrk(
    target: Target,
    body: bytes,
    *,
    seconds: float,
    connections: int,
    tmp: Path,
    pause_ms: int = 0,
    keys_file: Path | None = None,
) -> Load:
    """Closed-loop load from CONNECTIONS; each waits PAUSE_MS between its requests.

    With KEYS_FILE, each request carries the next key of the file (one secret a line)."""
    headers = "\n".join(
        f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}"
        for k, v in {"Content-Type": "application/json", **target.headers}.items()
    )
    start = time.monotonic()
    deadline = start + seconds
    script = tmp / "load.lua"
    script.write_text(
        WRK_SCRIPT.substitute(
            body=body.decode(),
            headers=headers,
            deadline=f"{deadline:.6f}",
            connections=connections,
            pause=pause_ms,
        )
        + (
            string.Template(spread_keys.ROTATE_LUA).substitute(keys_file=str(keys_file))
            if keys_file
            else ""
        ),
        encoding="utf-8",
    )
    cpu_before = _tree_cpu_seconds(target.pid) if target.pid else 0.0
    cores_before = _core_times()
    run_for = int(seconds + 0.999) + WRK_GRACE_S
    cmd = [
        "wrk", "-t1", f"-c{connections}", f"-d{run_for}s", "--timeout", "10s",
        "-s", str(script), target.url,
    ]  # fmt: skip
    result = subprocess.run(
        cmd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=run_for + 30,
        check=False,
    )
    cores = _core_usage(cores_before, _core_times())
    cpu = (_tree_cpu_seconds(target.pid) - cpu_before) if target.pid else 0.0
    elapsed = time.monotonic() - start
    line = next((x for x in result.stdout.splitlines() if x.startswith("WRK_RESULT ")), None)
    if result.returncode != 0 or line is None:
        raise BenchError(f"wrk failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    data = json.loads(line.removeprefix("WRK_RESULT "))
    requests = int(data["requests"])
    load = Load(
        requests=requests,
        non2xx=int(data["status"]),
        socket_errors=sum(int(data[k]) for k in ("connect", "read", "write", "timeout")),
        p50_ms=data["p50_us"] / 1000 if requests else math.nan,
        p99_ms=data["p99_us"] / 1000 if requests else math.nan,
        rps=requests / seconds,
        drained=bool(data["drained"]),
        concurrency=connections,
        cores=cores,
    )
    if target.pid:
        load.cpu_share = cpu / elapsed
        if requests:
            load.cpu_ms_per_request = 1000 * cpu / requests
    return load


# --- time to first byte ---------------------------------------------------------------------


@dataclasses.dataclass
class Ttfb:
    samples_ms: list[float]
    ok: int
    sent: int

    def mean(self) -> float:
        return statistics.fmean(self.samples_ms) if self.samples_ms else math.nan

    def pct(self, q: float) -> float:
        if not self.samples_ms:
            return math.nan
        ordered = sorted(self.samples_ms)
        return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


async def _ttfb(
    targets: list[Target], body: bytes, count: int, warmup: int, limit_s: float
) -> list[Ttfb]:
    """Sequential streaming requests, targets interleaved: time to the first body chunk.

    Stops early (with fewer samples) after LIMIT_S seconds, so a stalling server cannot
    stretch the run.
    """
    stop_at = time.monotonic() + limit_s
    results = [Ttfb([], 0, 0) for _ in targets]
    timeout = aiohttp.ClientTimeout(total=30)
    async with contextlib.AsyncExitStack() as stack:
        sessions = [
            await stack.enter_async_context(
                aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=1), timeout=timeout, auto_decompress=False
                )
            )
            for _ in targets
        ]
        for i in range(warmup + count):
            if time.monotonic() > stop_at:
                break
            for target, session, result in zip(targets, sessions, results, strict=True):
                headers = {"Content-Type": "application/json", **target.headers}
                start = time.perf_counter()
                async with session.post(target.url, data=body, headers=headers) as response:
                    first = await response.content.readany()
                    elapsed = time.perf_counter() - start
                    async for _ in response.content.iter_any():
                        pass
                result.sent += 1
                if response.status == 200 and first:
                    result.ok += 1
                    if i >= warmup:
                        result.samples_ms.append(1000 * elapsed)
    return results


def _run_ttfb(
    targets: list[Target], body: bytes, count: int, warmup: int, limit_s: float
) -> list[Ttfb]:
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    with contextlib.suppress(ImportError):
        import uvloop

        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(_ttfb(targets, body, count, warmup, limit_s))


# --- correctness ----------------------------------------------------------------------------


@dataclasses.dataclass
class Books:
    logs: int
    logs_200: int
    charges: int
    logs_charged: int
    holds: int
    wallet_held: int
    key_held: int
    wallets_off: list[str]
    leased: int  # the wallets' leased credit
    lease_rows: int  # the sum of their credit lease rows


# The rows COPYed in by the log-growth round are not requests of this run.
_LOG_COUNTS = (
    "SELECT count(*), count(*) FILTER (WHERE status_code = 200),"  # noqa: S608  (constants)
    " count(*) FILTER (WHERE cost > 0) FROM logs_requestlog"
    f" WHERE request_id NOT LIKE '{log_rows.BULK_PREFIX}%'"
)


def _books(dsn: str) -> Books:
    with psycopg.connect(dsn, connect_timeout=10) as conn:
        logs, logs_200, logs_charged = _one(conn, _LOG_COUNTS)
        (charges,) = _one(conn, "SELECT count(*) FROM billing_ledgerentry WHERE kind = 'charge'")
        (holds,) = _one(conn, "SELECT count(*) FROM billing_hold")
        (wallet_held,) = _one(conn, "SELECT coalesce(sum(held), 0) FROM billing_wallet")
        (key_held,) = _one(conn, "SELECT coalesce(sum(held), 0) FROM accounts_apikey")
        (leased,) = _one(conn, "SELECT coalesce(sum(leased), 0) FROM billing_wallet")
        (lease_rows,) = _one(conn, "SELECT coalesce(sum(amount), 0) FROM billing_creditlease")
        rows = conn.execute(
            "SELECT w.id, w.balance, coalesce(sum(e.amount), 0) FROM billing_wallet w"
            " LEFT JOIN billing_ledgerentry e ON e.wallet_id = w.id GROUP BY w.id, w.balance"
        ).fetchall()
    off = [f"wallet {w}: balance {b} != ledger {s}" for w, b, s in rows if b != s]
    return Books(
        logs, logs_200, charges, logs_charged, holds, wallet_held, key_held, off, leased,
        lease_rows,
    )  # fmt: skip


def _one(conn: psycopg.Connection[Any], sql: str) -> tuple[int, ...]:
    row = conn.execute(sql).fetchone()  # only literals above
    if row is None:
        raise BenchError(f"no row from {sql}")
    return tuple(int(x) for x in row)


def _settled_books(dsn: str) -> Books:
    """Settlement runs after the response is sent: wait until it has caught up."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    last = _books(dsn)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        books = _books(dsn)
        if books == last and books.holds == 0:
            return books
        last = books
    return last


# --- report ---------------------------------------------------------------------------------


def _ms(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.2f} ms"


def _added(hub_ms: float, direct_ms: float) -> str:
    diff = hub_ms - direct_ms
    return "n/a" if math.isnan(diff) else f"{diff:+.2f} ms"


# Exception lines ("psycopg.errors.X: ...") and log records ("... ERROR name message").
_PROBLEM = re.compile(
    r"^(?:[A-Za-z_][\w.]*(?:Error|Exception|Detected|Timeout)\w*:"
    r"|(?:.* )?(?:ERROR|WARNING|CRITICAL)[: ])"
)
_ID = re.compile(r"\b(req_|0x)[0-9a-fA-F]+")
_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ ")


def _log_problems(log: Path) -> list[tuple[int, str]]:
    """Distinct error lines of a server log with their counts, most frequent first."""
    counts: dict[str, int] = {}
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        if _PROBLEM.match(line):
            key = _ID.sub(r"\1...", _TIMESTAMP.sub("", line))[:160]
            counts[key] = counts.get(key, 0) + 1
    return sorted(((n, text) for text, n in counts.items()), reverse=True)


def _cpu_ms(load: Load) -> str:
    cpu = load.cpu_ms_per_request
    return f"{cpu:.2f} ms" if cpu else "n/a"


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def _stage_rows(
    stages: list[tuple[str, float, float]], unaccounted_us: float
) -> list[tuple[str, ...]]:
    """A stage breakdown's table: header, each stage's median and p90, what is left."""
    rows: list[tuple[str, ...]] = [("stage", "median", "p90")]
    rows += [(name, f"{med:,.0f}", f"{p90:,.0f}") for name, med, p90 in stages]
    rows.append(("(in-process, not in a stage above)", f"{unaccounted_us:,.0f}", ""))
    return rows


def _print_table(rows: list[tuple[str, ...]], indent: str = "  ") -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = [
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        print(indent + "  ".join(cells).rstrip())


# --- main -----------------------------------------------------------------------------------


@dataclasses.dataclass
class Options:
    duration: float
    concurrency: int
    ttfb_requests: int
    warmup: float
    pin: bool
    keep: bool
    rate: int
    log_rows: int
    workers: int
    profile: bool
    rounds: int


def _parse(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--duration", type=float, help="seconds per measured phase (8)")
    parser.add_argument("--concurrency", type=int, default=32, help="connections (32)")
    parser.add_argument(
        "--quick", action="store_true", help="3 s phases, 50 TTFB requests, 100,000 log rows"
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    parser.add_argument(
        "--rate", type=int, default=MODERATE_RATE, help=f"moderate load, req/s ({MODERATE_RATE})"
    )
    parser.add_argument(
        "--log-rows",
        type=int,
        help=f"request-log rows COPYed in before measuring again ({DEFAULT_LOG_ROWS:,};"
        f" --quick {QUICK_LOG_ROWS:,}; 0 skips that round)",
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="processes of the multi-worker phase (2; 1 skips)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        help="rounds of the saturating and c=1 phases, each beside its own direct run; the"
        " figures are the median round's (3; --quick 1)",
    )
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy profile")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (server logs)")
    args = parser.parse_args(argv)
    duration = args.duration if args.duration is not None else (3.0 if args.quick else 8.0)
    log_rows = args.log_rows
    if log_rows is None:
        log_rows = QUICK_LOG_ROWS if args.quick else DEFAULT_LOG_ROWS
    if duration <= 0 or args.concurrency < 1 or args.rate < 1:
        parser.error("--duration, --concurrency and --rate must be positive")
    rounds = args.rounds if args.rounds is not None else (1 if args.quick else 3)
    if log_rows < 0 or args.workers < 1 or rounds < 1:
        parser.error("--log-rows must be >= 0, --workers and --rounds >= 1")
    return Options(
        duration=duration,
        concurrency=args.concurrency,
        ttfb_requests=50 if args.quick else 200,
        warmup=1.0 if args.quick else 2.0,
        pin=not args.no_pin,
        keep=args.keep,
        rate=args.rate,
        log_rows=log_rows,
        workers=args.workers,
        profile=not args.no_profile,
        rounds=rounds,
    )


def _cpu_layout(pin: bool) -> tuple[set[int] | None, str]:
    """CPUs for the TokenHub worker; this process (and all it starts) goes elsewhere."""
    allowed = sorted(os.sched_getaffinity(0))
    if not pin or len(allowed) < 2:
        return None, "processes not pinned"
    server, rest = allowed[0], allowed[1]
    os.sched_setaffinity(0, {rest})  # inherited by PostgreSQL, Redis, the fake and wrk
    return {server}, (
        f"TokenHub worker pinned to CPU {server}; the fake upstream, wrk, PostgreSQL, Redis "
        f"and this script on CPU {rest} (the fake upstream and the load generator share it)"
    )


@contextlib.contextmanager
def _time_limit(seconds: int) -> Iterator[None]:
    def expired(signum: int, frame: FrameType | None) -> None:
        raise BenchTimeout(f"benchmark exceeded its time limit of {seconds} s")

    def terminated(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGALRM, expired)
    previous_term = signal.signal(signal.SIGTERM, terminated)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        signal.signal(signal.SIGTERM, previous_term)


def main(argv: list[str] | None = None) -> int:
    opts = _parse(argv)
    if shutil.which("wrk") is None:
        print("wrk not found: run scripts/ensure-test-servers.sh as root (apt-get install wrk)")
        return 1
    budget = int(
        300
        + 24 * (opts.duration + WRK_GRACE_S + 1)
        + opts.ttfb_requests * 0.4  # two TTFB rounds: the plain worker, the staged one
        + opts.log_rows / 10_000  # COPY + VACUUM: 100 s per million rows, generously
    )
    base = Path(tempfile.mkdtemp(prefix="tokenhub-bench-"))
    dbs = Databases(base, keep=opts.keep)
    procs = Processes(base)
    try:
        with _time_limit(budget):
            return _bench(opts, base, dbs, procs)
    except BenchError as exc:
        print(f"\nbenchmark failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    finally:
        with contextlib.suppress(KeyboardInterrupt):
            procs.stop_all()
            dbs.stop()
            if opts.keep:
                print(f"logs kept in {base}", file=sys.stderr)
            else:
                shutil.rmtree(base, ignore_errors=True)


def _step(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text} (load average {_loadavg()})", flush=True)


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text(encoding="utf-8").split()[:3])


DEAD_TABLES = ("billing_wallet", "accounts_apikey")


def _dead_tuples(dsn: str) -> dict[str, tuple[int, int]]:
    """Per table: (n_dead_tup, autovacuum count), as PostgreSQL's statistics show them now
    (backends report with a delay of up to a few seconds, so this lags a little)."""
    with psycopg.connect(dsn, connect_timeout=10) as conn:
        rows = conn.execute(
            "SELECT relname, n_dead_tup, autovacuum_count FROM pg_stat_user_tables"
            " WHERE relname = ANY(%s)",
            (list(DEAD_TABLES),),
        ).fetchall()
    return {str(name): (int(dead), int(vacuums)) for name, dead, vacuums in rows}


@dataclasses.dataclass
class Phase:
    label: str
    load: Load
    dead_before: dict[str, tuple[int, int]]
    dead_after: dict[str, tuple[int, int]]
    peak_rss_mb: float  # the worker's, at the end of the phase


@dataclasses.dataclass
class Profile:
    samples: int = 0
    top: list[tuple[str, int]] = dataclasses.field(default_factory=list)
    speedscope: Path | None = None
    load: Load | None = None
    error: str = ""


def _pyspy() -> str | None:
    local = Path(PYTHON).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


def _profiled(pid: int, seconds: float, out: Path, name: str, run: Callable[[], Load]) -> Profile:
    """RUN (a load) while py-spy samples PID: a raw profile (aggregated here) and a
    speedscope one (for https://www.speedscope.app), both non-blocking."""
    exe = _pyspy()
    if exe is None:
        return Profile(error="py-spy not installed (.venv/bin/pip install py-spy)")
    raw, scope = out / f"profile-{name}.raw.txt", out / f"profile-{name}.speedscope.json"
    command = [exe, "record", "--pid", str(pid), "--rate", "250", "--nonblocking"]
    command += ["--duration", str(max(1, int(seconds)))]
    spies = [
        subprocess.Popen(
            [*command, "--format", fmt, "-o", str(path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for fmt, path in (("raw", raw), ("speedscope", scope))
    ]
    result = run()  # py-spy samples for as long as the load runs, less its attach time
    errors = []
    for spy in spies:
        try:
            output, _ = spy.communicate(timeout=seconds + 30)
        except subprocess.TimeoutExpired:
            spy.kill()
            output, _ = spy.communicate()
        if spy.returncode != 0:
            errors.append(output.decode(errors="replace").strip()[-400:])
    if errors or not raw.exists():
        hint = (
            " py-spy needs ptrace: run as root, or give it CAP_SYS_PTRACE (docker run"
            " --cap-add SYS_PTRACE), or allow it with sysctl kernel.yama.ptrace_scope=0."
        )
        return Profile(load=result, error="; ".join(errors) + hint)
    samples, top = stage_report.top_own_time(raw, PROFILE_TOP)
    kept = out.parent / f"tokenhub-profile-{name}.speedscope.json"  # outlives the temp dir
    with contextlib.suppress(OSError):
        shutil.copyfile(scope, kept)
    return Profile(
        samples=samples, top=top, speedscope=kept if kept.exists() else None, load=result
    )


@dataclasses.dataclass
class LogRound:
    rows: int
    load_s: float
    vacuum_s: float
    where: str
    partitions: str
    plain_hub: Load
    c1: tuple[Load, Load]


def _bench(opts: Options, base: Path, dbs: Databases, procs: Processes) -> int:
    all_cpus = set(os.sched_getaffinity(0))
    server_cpus, layout = _cpu_layout(opts.pin)
    _step("starting PostgreSQL and Redis")
    database_url, redis_url = dbs.start()
    fake_port = servers._free_ports(1)[0]
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "TOKENHUB_TEST_EMBEDDED"}
    }
    env.update(
        DJANGO_SETTINGS_MODULE="tokenhub.settings",
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        SECRET_KEY=secrets.token_urlsafe(50),
        TOKENHUB_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
        DEBUG="0",
        EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
        TOKENHUB_VAR_DIR=str(base / "var"),
        PYTHONDONTWRITEBYTECODE="1",
    )

    _step("migrating and creating user, wallet credit, key, channel and price")
    _manage(env, "migrate", "--noinput", "-v0")
    # "--password=X": a random password may start with "-", which argparse takes for a flag.
    _manage(env, "create_user", EMAIL, f"--password={secrets.token_urlsafe(16)}")
    _manage(env, "wallet", "credit", EMAIL, "1000000")
    secret = _manage(env, "key", "create", EMAIL, "--name", "bench").splitlines()[-1]
    _manage(
        env,
        "channel", "add", "--name", "fake", "--type", "openai",
        "--base-url", f"http://127.0.0.1:{fake_port}/v1", "--api-key", "sk-up", "--models", MODEL,
    )  # fmt: skip
    _manage(env, "price", "set", MODEL, "--input", "0.15", "--output", "0.6")
    _step(f"creating {SPREAD_KEYS:,} keys in {SPREAD_ORGS} organizations (services)")
    started = time.monotonic()
    created = spread_keys.secrets_from(
        _manage(
            env,
            "shell",
            "-c",
            spread_keys.create_script(
                email=EMAIL, orgs=SPREAD_ORGS, keys=SPREAD_KEYS, credit_micros=10**10
            ),
        )
    )
    if len(created) != SPREAD_KEYS:
        raise BenchError(f"created {len(created)} keys, not {SPREAD_KEYS}")
    keys_file = base / "keys.txt"
    keys_file.write_text("\n".join(created) + "\n", encoding="utf-8")
    keys_s = time.monotonic() - started

    auth = {"Authorization": f"Bearer {secret}"}

    def start_hub(name: str, app: str, workers: int, cpus: set[int] | None) -> tuple[Proc, int]:
        port = servers._free_ports(1)[0]
        cmd = [
            PYTHON, "-m", "uvicorn", app,
            "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
            "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--lifespan", "on",
        ]  # fmt: skip
        proc = procs.start(name, cmd, env=env, cpus=cpus)
        _wait_http(f"http://127.0.0.1:{port}/v1/models", auth, proc)
        return proc, port

    _step("starting the fake upstream and TokenHub")
    fake = procs.start(
        "fake-upstream",
        [PYTHON, "-m", "tests.fakes.upstream", "--host", "127.0.0.1", "--port", str(fake_port)],
        env=env,
        cpus=None,
    )
    _wait_http(f"http://127.0.0.1:{fake_port}/v1/models", {}, fake)
    hub, hub_port = start_hub("tokenhub", "tokenhub.asgi:application", 1, server_cpus)
    pid = hub.popen.pid
    _step(f"TokenHub worker pid {pid}; {layout}")

    chat = "/v1/chat/completions"
    hub_target = Target("TokenHub", f"http://127.0.0.1:{hub_port}{chat}", auth, pid)
    direct = Target("direct", f"http://127.0.0.1:{fake_port}{chat}", {})
    message = {"role": "user", "content": "Say hello in one short sentence, please."}
    plain = json.dumps({"model": MODEL, "messages": [message], "max_tokens": 256}).encode()
    streamed = json.dumps(
        {"model": MODEL, "messages": [message], "max_tokens": 256, "stream": True}
    ).encode()

    hub_loads: list[Load] = []
    phases: list[Phase] = []

    def load(
        label: str,
        target: Target,
        body: bytes,
        seconds: float,
        connections: int,
        pause_ms: int = 0,
        keys: Path | None = None,
    ) -> Load:
        before = _dead_tuples(database_url) if target.pid else {}
        result = _wrk(
            target, body, seconds=seconds, connections=connections, tmp=base,
            pause_ms=pause_ms, keys_file=keys,
        )  # fmt: skip
        if target.pid:  # every TokenHub process writes to the same books
            hub_loads.append(result)
            after = _dead_tuples(database_url)
            phases.append(Phase(label, result, before, after, _peak_rss_mb(target.pid)))
        return result

    quiet_before = _background_load(pid)
    w = opts.warmup
    _step(f"warming up ({w:g} s each)")
    load("warm-up", hub_target, plain, w, opts.concurrency)
    load("warm-up stream", hub_target, streamed, w, opts.concurrency)
    load("warm-up 1,000 keys", hub_target, plain, w, opts.concurrency, keys=keys_file)
    load("warm-up", direct, plain, w, opts.concurrency)

    c, d = opts.concurrency, opts.duration
    m, rate = MODERATE_CONCURRENCY, opts.rate
    pause = round(m * 1000 / rate)
    rounds: list[Round] = []
    for r in range(1, opts.rounds + 1):
        # This machine is shared: one phase can run at half the speed of the same phase a
        # minute later. Each round pairs TokenHub with its own direct run.
        of = f" (round {r} of {opts.rounds})" if opts.rounds > 1 else ""
        tag = f" #{r}" if opts.rounds > 1 else ""
        _step(f"non-streaming, {c} connections, {d:g} s: direct, TokenHub one key, 1,000 keys{of}")
        plain_direct = load("direct", direct, plain, d, c)
        plain_hub = load(f"one wallet c={c}{tag}", hub_target, plain, d, c)
        spread_hub = load(f"1,000 keys c={c}{tag}", hub_target, plain, d, c, keys=keys_file)
        _step(f"streaming, {c} connections, {d:g} s: direct, then through TokenHub{of}")
        stream_direct = load("direct", direct, streamed, d, c)
        stream_hub = load(f"stream c={c}{tag}", hub_target, streamed, d, c)
        _step(f"concurrency 1, non-streaming, {d:g} s: direct, then TokenHub{of}")
        c1_direct = load("direct", direct, plain, d, 1)
        c1_hub = load(f"c=1{tag}", hub_target, plain, d, 1)
        found = Round((plain_direct, plain_hub), spread_hub, (stream_direct, stream_hub),
                      (c1_direct, c1_hub))  # fmt: skip
        rounds.append(found)
    plain_direct, plain_hub = _median(rounds, lambda r: r.plain[1].rps).plain
    spread_hub = _median(rounds, lambda r: r.spread.rps).spread
    stream_direct, stream_hub = _median(rounds, lambda r: r.stream[1].rps).stream
    c1_direct, c1_hub = _median(rounds, Round.added_c1).c1
    _step(
        f"moderate load: non-streaming, ~{rate} req/s ({m} connections pausing {pause} ms),"
        f" {d:g} s: direct, then TokenHub"
    )
    moderate_direct = load("direct", direct, plain, d, m, pause)
    moderate_hub = load(f"moderate ~{rate}/s", hub_target, plain, d, m, pause)
    n = opts.ttfb_requests
    _step(f"streaming time to first byte: {n} sequential requests each, interleaved")
    ttfb_hub, ttfb_direct = _run_ttfb(
        [hub_target, direct], streamed, n, warmup=10, limit_s=TTFB_LIMIT_S
    )
    rss_mb = _peak_rss_mb(pid)

    profiles: list[tuple[str, Profile]] = []
    if opts.profile:
        seconds = min(d, 5.0)
        for label, keys in (("one wallet", None), ("1,000 keys", keys_file)):
            _step(f"py-spy profile of the worker: {label}, {c} connections, {seconds:g} s")
            profiled = functools.partial(
                load, f"profiled {label} c={c}", hub_target, plain, seconds, c, keys=keys
            )
            name = label.replace(",", "").replace(" ", "-")
            profiles.append((label, _profiled(pid, seconds, base, name, profiled)))

    _step(f"per-stage breakdown: instrumented worker (benchmarks/staged_app.py), c=1, {d:g} s")
    staged, staged_port = start_hub(
        "tokenhub-staged", "benchmarks.staged_app:application", 1, server_cpus
    )
    staged_target = Target(
        "TokenHub staged", f"http://127.0.0.1:{staged_port}{chat}", auth, staged.popen.pid
    )
    stages_url = f"http://127.0.0.1:{staged_port}/__bench/stages"
    load("warm-up staged", staged_target, plain, w, 1)
    stage_report.fetch(stages_url + "?reset=1")
    staged_c1 = load("staged c=1", staged_target, plain, d, 1)
    stages = stage_report.breakdown(stage_report.fetch(stages_url))
    _step(f"per-stage breakdown of streams: {n} sequential streams each, interleaved")
    stage_report.fetch(stages_url + "?reset=1")
    staged_ttfb_hub, staged_ttfb_direct = _run_ttfb(
        [staged_target, direct], streamed, n, warmup=10, limit_s=TTFB_LIMIT_S
    )
    stream_stages = stage_report.stream_breakdown(stage_report.fetch(stages_url))
    procs.stop(staged)

    workers: tuple[int, Load] | None = None
    if opts.workers > 1:
        _step(f"{opts.workers} workers (not pinned), {c} connections, {d:g} s")
        multi, multi_port = start_hub(
            "tokenhub-workers", "tokenhub.asgi:application", opts.workers, all_cpus
        )
        multi_target = Target(
            "TokenHub workers", f"http://127.0.0.1:{multi_port}{chat}", auth, multi.popen.pid
        )
        load("warm-up workers", multi_target, plain, w, c)
        workers = (opts.workers, load(f"{opts.workers} workers c={c}", multi_target, plain, d, c))
        procs.stop(multi)

    logs_round: LogRound | None = None
    if opts.log_rows:
        logs_round = _log_round(opts, env, database_url, load, hub_target, direct, plain)

    _step("checking the books")
    books = _settled_books(database_url)
    quiet_after = _background_load(pid)
    problems = [p for proc in (hub, staged) for p in _log_problems(proc.log)]
    sent = sum(x.requests for x in hub_loads) + ttfb_hub.sent + staged_ttfb_hub.sent
    ok = sum(x.ok for x in hub_loads) + ttfb_hub.ok + staged_ttfb_hub.ok
    exact = all(x.drained and not x.socket_errors for x in hub_loads)
    slack = 0 if exact else sum(x.concurrency + x.socket_errors for x in hub_loads)

    report = Report(
        layout=layout,
        duration=d,
        concurrency=c,
        plain=(plain_direct, plain_hub),
        spread=spread_hub,
        stream=(stream_direct, stream_hub),
        moderate=(moderate_direct, moderate_hub),
        c1=(c1_direct, c1_hub),
        ttfb=(ttfb_direct, ttfb_hub),
        rss_mb=rss_mb,
        hub_loads=hub_loads,
        problems=problems,
        background=(quiet_before, quiet_after),
        rate=rate,
        keys_s=keys_s,
        stages=stages,
        staged_c1=staged_c1,
        stream_stages=stream_stages,
        staged_ttfb=(staged_ttfb_direct, staged_ttfb_hub),
        profiles=profiles,
        workers=workers,
        cpus=len(all_cpus),
        logs=logs_round,
        phases=phases,
        rounds=rounds,
    )
    report.print_figures()
    report.print_stages()
    report.print_stream_stages()
    report.print_profile()
    report.print_scale()
    report.print_dead_tuples()
    report.print_targets()
    return 0 if report.print_checks(books, sent=sent, ok=ok, exact=exact, slack=slack) else 1


def _log_round(
    opts: Options,
    env: dict[str, str],
    dsn: str,
    load: Callable[..., Load],
    hub_target: Target,
    direct: Target,
    plain: bytes,
) -> LogRound:
    """COPY the request-log rows in, then measure the main figures again."""
    c, d = opts.concurrency, opts.duration
    partitions = "not partitioned"
    if log_rows.partitioned(dsn):
        partitions = _manage(
            env,
            "shell",
            "-c",
            "from benchmarks import log_rows; print(log_rows.ensure_partitions())",
        ).splitlines()[-1]
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT organization_id FROM logs_requestlog GROUP BY 1 ORDER BY count(*) DESC LIMIT 1"
        ).fetchone()
    org = int(row[0]) if row else 1
    _step(f"COPYing {opts.log_rows:,} request-log rows into logs_requestlog")
    try:
        load_s, where = log_rows.load(dsn, opts.log_rows, organization_id=org)
    except (psycopg.Error, RuntimeError) as exc:
        raise BenchError(f"loading the request log failed: {exc}") from None
    _step(f"loaded in {load_s:.0f} s ({where}); VACUUM (ANALYZE) logs_requestlog")
    vacuum_s = log_rows.vacuum_analyze(dsn)
    _step(f"with {opts.log_rows:,} log rows: {c} connections, then c=1 direct and TokenHub")
    load("warm-up after COPY", hub_target, plain, opts.warmup, c)
    plain_hub = load(f"one wallet c={c}, {opts.log_rows:,} log rows", hub_target, plain, d, c)
    c1_direct = load("direct", direct, plain, d, 1)
    c1_hub = load(f"c=1, {opts.log_rows:,} log rows", hub_target, plain, d, 1)
    return LogRound(
        rows=opts.log_rows,
        load_s=load_s,
        vacuum_s=vacuum_s,
        where=where,
        partitions=partitions,
        plain_hub=plain_hub,
        c1=(c1_direct, c1_hub),
    )


@dataclasses.dataclass
class Report:
    layout: str
    duration: float
    concurrency: int
    plain: tuple[Load, Load]  # (direct, TokenHub)
    spread: Load  # TokenHub, the load over 1,000 keys in 100 organizations
    stream: tuple[Load, Load]
    moderate: tuple[Load, Load]
    c1: tuple[Load, Load]
    ttfb: tuple[Ttfb, Ttfb]
    rss_mb: float
    hub_loads: list[Load]
    problems: list[tuple[int, str]]
    background: tuple[tuple[str, float], tuple[str, float]]  # before and after the load
    rate: int
    keys_s: float
    stages: stage_report.Breakdown
    staged_c1: Load
    stream_stages: stage_report.StreamBreakdown
    staged_ttfb: tuple[Ttfb, Ttfb]  # direct, instrumented TokenHub
    profiles: list[tuple[str, Profile]]
    workers: tuple[int, Load] | None
    cpus: int
    logs: LogRound | None
    phases: list[Phase]
    rounds: list[Round]

    def print_figures(self) -> None:
        c = self.concurrency
        print()
        print("TokenHub relay overhead (issue 18)")
        print(
            "  1 uvicorn worker (uvloop, httptools), DEBUG=0, PostgreSQL + Redis, full billing"
            " and request logging; load: wrk, 1 thread; streaming TTFB: aiohttp client"
        )
        print(f"  {self.layout}")
        (before, worst_before), (after, worst_after) = self.background
        print(f"  CPU busy with our servers idle: before the load {before}; after it {after}")
        print(f"  load average at the end: {_loadavg()}")
        if max(worst_before, worst_after) > BACKGROUND_WARN_PCT:
            print(
                "  WARNING: other processes were using the CPUs; these figures are not"
                " reliable: rerun on a quiet machine"
            )
        print(f"  {self.duration:g} s per phase; the fake upstream answers at once")
        print()
        rows: list[tuple[str, ...]] = [("", "direct (fake)", "via TokenHub", "added")]
        for label, (dl, hl) in (
            (f"non-stream c={c}, one wallet", self.plain),
            (f"non-stream c={c}, 1,000 keys", (self.plain[0], self.spread)),
            (f"stream c={c}", self.stream),
            (f"non-stream ~{self.rate}/s (moderate)", self.moderate),
            ("non-stream c=1", self.c1),
        ):
            rows.append((f"{label}  req/s", f"{dl.rps:,.0f}", f"{hl.rps:,.0f}", ""))
            for name in ("p50", "p99"):
                dv, hv = getattr(dl, f"{name}_ms"), getattr(hl, f"{name}_ms")
                rows.append((f"{label}  {name}", _ms(dv), _ms(hv), _added(hv, dv)))
        td, th = self.ttfb
        label = f"stream TTFB, {len(th.samples_ms)} sequential"
        for name, dv, hv in (
            ("p50", td.pct(50), th.pct(50)),
            ("p99", td.pct(99), th.pct(99)),
            ("mean", td.mean(), th.mean()),
        ):
            rows.append((f"{label}  {name}", _ms(dv), _ms(hv), _added(hv, dv)))
        _print_table(rows)
        self._print_rounds()
        print()
        for label, hl in (
            ("non-stream (one wallet)", self.plain[1]),
            ("non-stream (1,000 keys)", self.spread),
            ("stream", self.stream[1]),
        ):
            cpu = hl.cpu_ms_per_request
            if cpu:
                print(
                    f"  TokenHub worker CPU per completed {label} request: {cpu:.2f} ms"
                    f" (= {1000 / cpu:,.0f} req/s per fully used core); the worker used"
                    f" {100 * hl.cpu_share:.0f}% of a core"
                )
            else:
                print(f"  TokenHub worker CPU per {label} request: n/a (no request completed)")
        print(f"  TokenHub worker peak RSS (VmHWM): {self.rss_mb:.1f} MB")
        print(f"  CPU busy during non-stream direct:   {self.plain[0].cores}")
        print(f"  CPU busy during non-stream TokenHub: {self.plain[1].cores}")
        print(f"  CPU busy during stream TokenHub:     {self.stream[1].cores}")
        print(
            f"  {SPREAD_KEYS:,} keys in {SPREAD_ORGS} organizations created in {self.keys_s:.1f} s"
        )
        loads = [*self.plain, *self.stream, *self.moderate[:1], *self.c1[:1], *self.hub_loads]
        failures = sorted(
            {
                f"{x.non2xx} non-2xx + {x.socket_errors} socket errors at c={x.concurrency}"
                for x in loads
                if x.non2xx or x.socket_errors
            }
        )
        print(f"  wrk errors: {'; '.join(failures) or 'none'}")
        td, th = self.ttfb
        if th.ok < th.sent or td.ok < td.sent:
            print(f"  TTFB client: {th.sent - th.ok} via TokenHub, {td.sent - td.ok} direct failed")
        if self.problems:
            total = sum(n for n, _ in self.problems)
            print(f"  TokenHub logs: {total} error/warning lines, most frequent:")
            for count, text in sorted(self.problems, reverse=True)[:5]:
                print(f"    {count:6d}  {text}")
        else:
            print("  TokenHub logs: no errors or warnings")

    def print_stages(self) -> None:
        s = self.stages
        direct = self.c1[0].p50_ms * 1000
        staged = self.staged_c1.p50_ms * 1000
        print()
        print(
            f"Per-stage breakdown at concurrency 1 (non-streaming; {s.requests:,} requests to an"
            " instrumented worker, benchmarks/staged_app.py; µs)"
        )
        rows = _stage_rows(s.rows, s.unaccounted_in_process_us)
        rows.append(("request in to answer sent, in process", f"{s.in_process_us:,.0f}", ""))
        rows.append(("settle, after the answer (not in the latency)", f"{s.settle_us:,.0f}", ""))
        _print_table(rows)
        upstream = next(med for name, med, _ in s.rows if name.startswith("connect"))
        ours = s.in_process_us - upstream
        outside = staged - s.in_process_us
        print(
            f"  client p50: {staged:,.0f} µs instrumented, {self.c1[1].p50_ms * 1000:,.0f} µs"
            f" uninstrumented, {direct:,.0f} µs direct to the fake upstream"
        )
        print(
            f"  added (instrumented p50 - direct p50): {staged - direct:,.0f} µs ="
            f" in-process outside the upstream call {ours:,.0f} µs"
            f" + the upstream call beyond a direct request {upstream - direct:,.0f} µs"
            f" + outside the app (uvicorn's HTTP parsing, sockets; not timed) the rest,"
            f" {staged - direct - ours - (upstream - direct):,.0f} µs"
        )
        print(f"  (time outside the ASGI app, client p50 - in-process median: {outside:,.0f} µs)")
        print(
            f"  timer overhead: {s.overhead_ns:,.0f} ns per wrapped call x"
            f" {s.wraps_per_request:.1f} wrapped calls per request ="
            f" {s.overhead_ns * s.wraps_per_request / 1000:.1f} µs per request"
        )

    def print_stream_stages(self) -> None:
        s = self.stream_stages
        direct, hub = (t.pct(50) * 1000 for t in self.staged_ttfb)
        print()
        print(
            f"Streaming time to first byte at concurrency 1 ({s.requests:,} sequential streams"
            " to the instrumented worker; µs)"
        )
        rows = _stage_rows(s.rows, s.unaccounted_us)
        rows.append(("request in to first chunk sent, in process", f"{s.first_chunk_us:,.0f}", ""))
        _print_table(rows)
        upstream = next(med for name, med, _ in s.rows if name.startswith("connect"))
        print(
            f"  client TTFB p50: {hub:,.0f} µs instrumented, {direct:,.0f} µs direct;"
            f" added {hub - direct:,.0f} µs = in-process outside the upstream call"
            f" {s.first_chunk_us - upstream:,.0f} µs + the upstream call and the rest"
            f" (sockets, the client) {hub - direct - (s.first_chunk_us - upstream):,.0f} µs"
        )

    def print_profile(self) -> None:
        if not self.profiles:
            print()
            print("py-spy profile: skipped (--no-profile)")
        for label, p in self.profiles:
            print()
            print(f"py-spy profile of the worker under saturating load, {label} (own time)")
            if p.error:
                print(f"  not recorded: {p.error}")
                continue
            if p.load is not None:
                print(
                    f"  {p.load.rps:,.0f} req/s while sampled at 250 Hz, {p.samples:,} samples"
                    " (time idle in the event loop's poll is not sampled)"
                )
            rows: list[tuple[str, ...]] = [("function (file)", "samples", "share")]
            for name, n in p.top:
                rows.append((name[:110], f"{n:,}", f"{100 * n / max(1, p.samples):.1f}%"))
            _print_table(rows)
            if p.speedscope is not None:
                print(f"  speedscope: {p.speedscope} (open in https://www.speedscope.app)")

    def print_scale(self) -> None:
        print()
        print("Scale across processes, and as the request log grows")
        rows: list[tuple[str, ...]] = [("", "req/s", "CPU/request", "CPU busy")]
        one = self.plain[1]
        rows.append(
            (f"1 worker (pinned), c={one.concurrency}", f"{one.rps:,.0f}",
             _cpu_ms(one), one.cores)
        )  # fmt: skip
        if self.workers is not None:
            n, multi = self.workers
            rows.append(
                (f"{n} workers (not pinned), c={multi.concurrency}", f"{multi.rps:,.0f}",
                 _cpu_ms(multi), multi.cores)
            )  # fmt: skip
        _print_table(rows)
        if self.workers is not None:
            n, multi = self.workers
            print(
                f"  {n} workers / 1 worker: {multi.rps / max(1.0, one.rps):.2f}x; the workers"
                f" used {multi.cpu_share:.2f} cores of {self.cpus}, which they share with"
                " PostgreSQL, Redis, the fake upstream and wrk (and, on this machine, other"
                " users): see the CPU busy column for what was left."
            )
        lr = self.logs
        if lr is None:
            print("  request-log growth round skipped (--log-rows 0)")
            return
        print(
            f"  {lr.rows:,} request-log rows COPYed in {lr.load_s:.0f} s"
            f" ({lr.rows / max(lr.load_s, 0.001):,.0f} rows/s; {lr.where}; {lr.partitions});"
            f" VACUUM (ANALYZE) {lr.vacuum_s:.0f} s"
        )
        rows = [("", "0 log rows", f"{lr.rows:,} log rows", "change")]
        before, after = self.plain[1], lr.plain_hub
        rows.append(
            (f"one wallet c={before.concurrency} req/s", f"{before.rps:,.0f}",
             f"{after.rps:,.0f}", f"{100 * (after.rps / max(before.rps, 1) - 1):+.0f}%")
        )  # fmt: skip
        rows.append(("CPU/request", _cpu_ms(before), _cpu_ms(after), ""))
        added0 = self.c1[1].p50_ms - self.c1[0].p50_ms
        added1 = lr.c1[1].p50_ms - lr.c1[0].p50_ms
        rows.append(("added p50 at c=1", _ms(added0), _ms(added1), _added(added1, added0)))
        rows.append(("direct p50 at c=1", _ms(self.c1[0].p50_ms), _ms(lr.c1[0].p50_ms), ""))
        _print_table(rows)

    def print_dead_tuples(self) -> None:
        print()
        print(
            "Dead tuples per phase (pg_stat_user_tables.n_dead_tup before → after;"
            " autovacuum runs in brackets; statistics lag the backends by up to a few seconds)"
            " and the worker's peak RSS when it ends"
        )
        rows: list[tuple[str, ...]] = [
            ("TokenHub phase", "req/s", "p50", *(f"{t}" for t in DEAD_TABLES), "peak RSS")
        ]
        for phase in self.phases:
            cells = []
            for table in DEAD_TABLES:
                b, a = phase.dead_before.get(table, (0, 0)), phase.dead_after.get(table, (0, 0))
                cells.append(f"{b[0]:,} → {a[0]:,} ({a[1]})")
            rss = f"{phase.peak_rss_mb:.1f} MB"
            rows.append(
                (phase.label, f"{phase.load.rps:,.0f}", _ms(phase.load.p50_ms), *cells, rss)
            )
        _print_table(rows)

    def _print_rounds(self) -> None:
        if len(self.rounds) < 2:
            return
        print(
            f"  {len(self.rounds)} rounds; each figure above is its median round's. Round by round:"
        )
        rows: list[tuple[str, ...]] = [
            ("one wallet req/s", *(f"{r.plain[1].rps:,.0f}" for r in self.rounds)),
            ("one wallet CPU/request", *(_cpu_ms(r.plain[1]) for r in self.rounds)),
            ("1,000 keys req/s", *(f"{r.spread.rps:,.0f}" for r in self.rounds)),
            ("streams/s", *(f"{r.stream[1].rps:,.0f}" for r in self.rounds)),
            ("added p50 at c=1", *(_ms(r.added_c1()) for r in self.rounds)),
            ("direct req/s", *(f"{r.plain[0].rps:,.0f}" for r in self.rounds)),
        ]
        _print_table(rows, indent="    ")

    def print_targets(self) -> None:
        plain_direct, plain_hub = self.plain
        stream_direct, stream_hub = self.stream
        c1_direct, c1_hub = self.c1
        td, th = self.ttfb
        added_c1 = c1_hub.p50_ms - c1_direct.p50_ms
        added_ttfb = th.pct(50) - td.pct(50)
        cpu = plain_hub.cpu_ms_per_request or math.nan
        ratio = plain_hub.rps / self.spread.rps if self.spread.rps else math.nan
        rows: list[tuple[str, ...]] = [("target (issue 18)", "target", "measured", "direct", "")]

        def add(name: str, target: str, measured: str, base: str, ok: bool | None) -> None:
            rows.append((name, target, measured, base, "" if ok is None else _verdict(ok)))

        # NaN (no data) compares False: MISS.
        add(
            "added p50 at c=1, non-streaming",
            f"<= {TARGET_ADDED_C1_MS:g} ms",
            _ms(added_c1),
            _ms(c1_direct.p50_ms),
            added_c1 <= TARGET_ADDED_C1_MS,
        )
        add(
            "added TTFB p50 at c=1, streaming",
            f"<= {TARGET_ADDED_TTFB_MS:g} ms",
            _ms(added_ttfb),
            _ms(td.pct(50)),
            added_ttfb <= TARGET_ADDED_TTFB_MS,
        )
        add(
            "non-streaming req/s, one core",
            f">= {TARGET_RPS:,.0f}",
            f"{plain_hub.rps:,.0f}",
            f"{plain_direct.rps:,.0f}",
            plain_hub.rps >= TARGET_RPS,
        )
        add(
            "worker CPU per non-streaming request",
            f"<= {TARGET_CPU_MS:g} ms",
            _cpu_ms(plain_hub),
            "",
            cpu <= TARGET_CPU_MS,
        )
        add(
            "streams/s, one core",
            f">= {TARGET_STREAM_RPS:,.0f}",
            f"{stream_hub.rps:,.0f}",
            f"{stream_direct.rps:,.0f}",
            stream_hub.rps >= TARGET_STREAM_RPS,
        )
        add(
            f"req/s over {SPREAD_KEYS:,} keys in {SPREAD_ORGS} orgs",
            "report",
            f"{self.spread.rps:,.0f}",
            f"{plain_direct.rps:,.0f}",
            None,
        )
        add(
            "single wallet / spread req/s",
            f">= {TARGET_SPREAD_RATIO:g}",
            f"{ratio:.2f}",
            "",
            ratio >= TARGET_SPREAD_RATIO,
        )
        lr = self.logs
        if lr is not None:
            change = lr.plain_hub.rps / plain_hub.rps - 1 if plain_hub.rps else math.nan
            added1 = lr.c1[1].p50_ms - lr.c1[0].p50_ms
            add(
                f"req/s with {lr.rows:,} log rows",
                f"within {100 * FLAT_RPS_NOISE:.0f}% of 0 rows",
                f"{lr.plain_hub.rps:,.0f} ({100 * change:+.0f}%)",
                "",
                abs(change) <= FLAT_RPS_NOISE,
            )
            add(
                f"added c=1 p50 with {lr.rows:,} log rows",
                f"within {FLAT_ADDED_NOISE_MS:g} ms or 10% of 0 rows",
                _ms(added1),
                _ms(lr.c1[0].p50_ms),
                abs(added1 - added_c1) <= max(FLAT_ADDED_NOISE_MS, FLAT_RPS_NOISE * added_c1),
            )
        else:
            add("flat as logs grow", "0 and 10M rows", "not measured", "", False)
        add("req/s, 1 worker (pinned)", "report", f"{plain_hub.rps:,.0f}", "", None)
        if self.workers is not None:
            n, multi = self.workers
            add(f"req/s, {n} workers (not pinned)", "report", f"{multi.rps:,.0f}", "", None)
        add(
            "peak RSS per worker",
            f"< {TARGET_RSS_MB:g} MB",
            f"{self.rss_mb:.1f} MB",
            "",
            self.rss_mb < TARGET_RSS_MB,
        )
        print()
        print("Targets (issue 18), beside the direct baseline of this run")
        _print_table(rows)

    def print_checks(self, books: Books, *, sent: int, ok: int, exact: bool, slack: int) -> bool:
        if exact:
            logs_ok = books.logs == sent and books.logs_200 == ok
            logs_text = (
                f"{books.logs_200} rows with 200 of {books.logs};"
                f" clients sent {sent}, got {ok} 200s"
            )
        else:  # wrk cut some requests off: their outcome is unknown to the client
            logs_ok = ok <= books.logs_200 <= ok + slack
            logs_text = (
                f"{books.logs_200} rows with 200; clients got {ok} 200s"
                f" (+ up to {slack} cut off by wrk)"
            )
        checks = [
            ("RequestLog rows = requests answered 200", logs_text, logs_ok),
            (
                "one charge ledger entry per charged request",
                f"{books.charges} charges, {books.logs_charged} charged log rows",
                books.charges == books.logs_charged,
            ),
            (
                "wallet balance = sum of its ledger entries",
                "; ".join(books.wallets_off) or "every wallet",
                not books.wallets_off,
            ),
            (
                "no holds remain",
                f"{books.holds} holds, wallets held {books.wallet_held}, keys held"
                f" {books.key_held}",
                books.holds == 0 and books.wallet_held == 0 and books.key_held == 0,
            ),
            (
                "leased credit = credit lease rows",
                f"wallets leased {books.leased:,}, lease rows {books.lease_rows:,}"
                " (the running worker's slices)",
                books.leased == books.lease_rows,
            ),
        ]
        print()
        print("Correctness (after the run)")
        _print_table([(name, text, "OK" if good else "FAIL") for name, text, good in checks])
        return all(good for _, _, good in checks)


if __name__ == "__main__":
    sys.exit(main())
