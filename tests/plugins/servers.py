"""Throwaway PostgreSQL and Redis servers for the test suite.

Load it early with ``-p tests.plugins.servers`` (it is in pytest ``addopts``): its
``pytest_load_initial_conftests`` wrapper runs before pytest-django imports the Django
settings, and exports for them:

- ``DATABASE_URL``: ``postgres://postgres@127.0.0.1:PORT/tokenhub``
- ``REDIS_URL``: ``redis://127.0.0.1:PORT/0``
- ``TOKENHUB_TEST_SERVERS``: ``postgres+redis``, or ``embedded`` (see below)

Modes:

- ``TOKENHUB_TEST_EMBEDDED=1``: nothing is started; ``DATABASE_URL`` points at a SQLite file
  in a fresh temp dir and ``REDIS_URL`` is removed (the embedded configuration).
- ``DATABASE_URL`` and/or ``REDIS_URL`` already set: used as they are; only what is not set
  is started.
- otherwise: a fresh PostgreSQL cluster (trust auth, 127.0.0.1 only, fsync off) and a Redis
  without persistence, each on a free port.

Whatever was started is stopped and its temp dir deleted in ``pytest_unconfigure``, by an
``atexit`` fallback, and by a small watchdog process that cleans up if pytest dies without
doing so itself (SIGKILL, SIGTERM). Binaries come from ``scripts/ensure-test-servers.sh``.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Generator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO

import pytest

MISSING_BINARIES = (
    "run scripts/ensure-test-servers.sh (needs root) or install postgresql and redis-server"
)
DB_NAME = "tokenhub"
DB_USER = "postgres"
STARTUP_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
PG_BINARIES = ("initdb", "pg_ctl", "postgres")

# Appended to postgresql.conf rather than passed as `pg_ctl -o`, which goes through a shell.
PG_CONF = """
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = '{socket_dir}'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
"""


@dataclass
class _Cleanup:
    """What to stop and delete at exit; handed to the watchdog as JSON, so plain data only."""

    pg_stop: list[str] = field(default_factory=list)
    pg_pidfile: str = ""
    pg_cwd: str = ""
    redis_pidfile: str = ""
    dirs: list[str] = field(default_factory=list)


@dataclass
class _Session:
    # id() of the Config that started the servers: a nested in-process run (pytester)
    # must not stop them in its own unconfigure.
    owner: int
    cleanup: _Cleanup
    watchdog: subprocess.Popen[bytes] | None = None
    # Environment before we touched it, restored at the end so that a later run in the same
    # process does not mistake our dead servers' URLs for ones the user provided.
    saved_env: dict[str, str | None] = field(default_factory=dict)


_session: _Session | None = None


# --- hooks ---------------------------------------------------------------------------------


@pytest.hookimpl(wrapper=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> Generator[None, None, None]:
    # As a wrapper, the part before `yield` runs before pytest-django's (tryfirst) impl.
    options = early_config.known_args_namespace
    # pytest-django tolerates a broken configuration for --help/--version: start nothing.
    if not (getattr(options, "help", False) or getattr(options, "version", False)):
        try:
            _configure(early_config)
        except BaseException:
            _stop_servers()
            raise
    try:
        return (yield)
    except BaseException:
        _stop_servers()  # pytest_unconfigure will not run when setup fails here
        raise


def pytest_unconfigure(config: pytest.Config) -> None:
    if _session is not None and _session.owner == id(config):
        _stop_servers()


# --- setup ---------------------------------------------------------------------------------


def _configure(config: pytest.Config) -> None:
    if _session is not None:  # a nested in-process run: the environment is already set
        return
    # Servers and workers the tests start run in production mode, which refuses the
    # console email backend (sign-in links in the log): they keep mail in memory.
    os.environ.setdefault("EMAIL_BACKEND", "django.core.mail.backends.locmem.EmailBackend")
    # The in-process test server must not sweep holds that tests set up on purpose; the
    # server processes that tests start sweep (tests/relay/processes.py turns it on).
    os.environ.setdefault("HOLD_SWEEP_IN_SERVER", "0")
    # Requests are held one by one, so that tests can read each hold, the held credit and
    # the balance header exactly; tests/relay/test_credit_leases.py turns leases on.
    os.environ.setdefault("RELAY_CREDIT_LEASE_MICROS", "0")
    if os.environ.get("TOKENHUB_TEST_EMBEDDED") == "1":
        sqlite_dir = tempfile.mkdtemp(prefix="tokenhub-test-")
        _activate(config, _Cleanup(dirs=[sqlite_dir]), watchdog=False)
        _setenv("DATABASE_URL", f"sqlite:///{sqlite_dir}/db.sqlite3")
        _setenv("REDIS_URL", None)
        _setenv("TOKENHUB_TEST_SERVERS", "embedded")
        return

    need_pg = not os.environ.get("DATABASE_URL")
    need_redis = not os.environ.get("REDIS_URL")
    if not (need_pg or need_redis):
        os.environ["TOKENHUB_TEST_SERVERS"] = "postgres+redis"
        return
    pg_bindir = _find_pg_bindir() if need_pg else None
    redis_server = shutil.which("redis-server") if need_redis else None
    if (need_pg and pg_bindir is None) or (need_redis and redis_server is None):
        raise pytest.UsageError(MISSING_BINARIES)

    base = Path(tempfile.mkdtemp(prefix="tokenhub-test-"))
    pg_port, redis_port = _free_ports(2)
    pg_dir, redis_dir = base / "pg", base / "redis"
    cleanup = _Cleanup(dirs=[str(base)])
    if pg_bindir is not None:
        cleanup.pg_stop = _as_pg_user(
            [str(pg_bindir / "pg_ctl"), "stop", "-D", str(pg_dir / "data")]
            + ["-m", "immediate", "-w", "-t", str(int(STOP_TIMEOUT)), "-s"]
        )
        cleanup.pg_pidfile = str(pg_dir / "data" / "postmaster.pid")
        cleanup.pg_cwd = str(pg_dir)
    if redis_server is not None:
        cleanup.redis_pidfile = str(redis_dir / "redis.pid")
    # Register cleanup (and the watchdog) before anything starts, so nothing can escape it.
    _activate(config, cleanup, watchdog=True)
    _setenv("TOKENHUB_TEST_SERVERS", "postgres+redis")

    if pg_bindir is not None:
        _start_postgres(pg_bindir, pg_dir, pg_port)
        _setenv("DATABASE_URL", f"postgres://{DB_USER}@127.0.0.1:{pg_port}/{DB_NAME}")
    if redis_server is not None:
        _start_redis(redis_server, redis_dir, redis_port)
        _setenv("REDIS_URL", f"redis://127.0.0.1:{redis_port}/0")


def _setenv(name: str, value: str | None) -> None:
    if _session is not None:
        _session.saved_env.setdefault(name, os.environ.get(name))
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def _activate(config: pytest.Config, cleanup: _Cleanup, *, watchdog: bool) -> None:
    global _session
    _session = _Session(owner=id(config), cleanup=cleanup)
    atexit.register(_stop_servers)
    if watchdog:
        # Its stdin is a pipe only this process holds (pipes are not inherited by other
        # children), so it reads EOF exactly when pytest is gone, however it died.
        _session.watchdog = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--watchdog"]
            + [json.dumps(asdict(cleanup))],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd="/",
            start_new_session=True,  # Ctrl-C in the terminal must not kill it
        )


def _find_pg_bindir() -> Path | None:
    candidates: list[Path] = []
    initdb = shutil.which("initdb")
    if initdb:
        # Resolve symlinks so that all three binaries come from one installation.
        candidates += [Path(initdb).resolve().parent, Path(initdb).parent]
    # Debian keeps the server binaries off PATH, in one directory per major version.
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_version_key, reverse=True)
    for bindir in candidates:
        if all(os.access(bindir / name, os.X_OK) for name in PG_BINARIES):
            return bindir
    return None


def _version_key(bindir: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in bindir.parent.name.split(".") if part.isdigit())


def _free_ports(count: int) -> list[int]:
    # Bind them all before closing any, so the kernel cannot hand out the same port twice.
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]


def _as_pg_user(cmd: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root: use an unprivileged account instead.
    return ["runuser", "-u", DB_USER, "--", *cmd] if os.geteuid() == 0 else cmd


def _postgres_account() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(DB_USER)
    except KeyError:
        _run(["useradd", "--system", "--user-group", "--no-create-home", DB_USER])
        return pwd.getpwnam(DB_USER)


def _start_postgres(bindir: Path, pg_dir: Path, port: int) -> None:
    pg_dir.mkdir(mode=0o700)
    data, log = pg_dir / "data", pg_dir / "server.log"
    if os.geteuid() == 0:
        account = _postgres_account()
        pg_dir.parent.chmod(0o711)  # mkdtemp makes it 0700; postgres must traverse it
        os.chown(pg_dir, account.pw_uid, account.pw_gid)
    # cwd=pg_dir: postgres binaries fail when they cannot read their working directory.
    _run(
        _as_pg_user(
            [str(bindir / "initdb"), "-D", str(data), "-U", DB_USER, "-A", "trust"]
            + ["-E", "UTF8", "--locale=C", "--no-sync"]
        ),
        cwd=pg_dir,
    )
    with (data / "postgresql.conf").open("a", encoding="utf-8") as conf:
        conf.write(PG_CONF.format(port=port, socket_dir=pg_dir))
    _run(
        _as_pg_user(
            [str(bindir / "pg_ctl"), "start", "-D", str(data), "-l", str(log)]
            + ["-w", "-t", str(int(STARTUP_TIMEOUT)), "-s"]
        ),
        cwd=pg_dir,
        log=log,
    )
    _create_database(port, log)


def _create_database(port: int, log: Path) -> None:
    import psycopg  # only needed in this mode; keeps embedded runs light

    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:  # pg_ctl -w already waited; this only covers TCP lagging behind
        try:
            with psycopg.connect(
                host="127.0.0.1",
                port=port,
                user=DB_USER,
                dbname="postgres",
                autocommit=True,
                connect_timeout=5,
            ) as conn:
                conn.execute("CREATE DATABASE tokenhub")
                return
        except psycopg.OperationalError as exc:
            if time.monotonic() > deadline:
                raise _startup_error("PostgreSQL did not accept connections", exc, log) from exc
            time.sleep(0.1)


def _start_redis(server: str, redis_dir: Path, port: int) -> None:
    redis_dir.mkdir(mode=0o700)
    log = redis_dir / "redis.log"
    _run(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--daemonize", "yes"]
        + ["--save", "", "--appendonly", "no", "--dir", str(redis_dir)]
        + ["--pidfile", str(redis_dir / "redis.pid"), "--logfile", str(log)],
        cwd=redis_dir,
        log=log,
    )
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        reply = b""
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", port), timeout=1) as sock,
        ):
            sock.sendall(b"PING\r\n")
            reply = sock.recv(64)
        if reply.startswith(b"+PONG"):
            return
        if time.monotonic() > deadline:
            raise _startup_error("Redis did not answer PING", reply.decode(errors="replace"), log)
        time.sleep(0.05)


def _run(cmd: list[str], *, cwd: Path | None = None, log: Path | None = None) -> None:
    # Output goes to a file, not a pipe: a daemon inheriting a pipe would make us wait on it.
    with tempfile.TemporaryFile() as out:
        result = subprocess.run(
            cmd,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            timeout=STARTUP_TIMEOUT * 2,
            check=False,
        )
        if result.returncode != 0:
            out.seek(0)
            program = cmd[cmd.index("--") + 1] if cmd[0] == "runuser" else cmd[0]
            raise _startup_error(
                f"{Path(program).name} exited with {result.returncode}", _tail(out), log
            )


def _tail(stream: IO[bytes], lines: int = 20) -> str:
    return "\n".join(stream.read().decode(errors="replace").splitlines()[-lines:])


def _startup_error(what: str, detail: object, log: Path | None) -> pytest.UsageError:
    text = f"test servers: {what}: {detail}".rstrip()
    if log is not None and log.exists():
        with log.open("rb") as stream:
            text += f"\n--- {log.name} ---\n{_tail(stream)}"
    return pytest.UsageError(text)


# --- teardown ------------------------------------------------------------------------------


def _stop_servers() -> None:
    global _session
    session = _session
    if session is None:
        return
    _cleanup(session.cleanup)
    # Only forget the session once everything is down: if Ctrl-C interrupts the cleanup,
    # the atexit fallback and the watchdog still try again.
    _session = None
    for name, value in session.saved_env.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    if session.watchdog is not None:
        session.watchdog.kill()
        session.watchdog.wait()
        if session.watchdog.stdin is not None:
            session.watchdog.stdin.close()


def _cleanup(spec: _Cleanup) -> None:
    """Stop what is running and delete the temp dirs; safe to repeat, stdlib only."""
    if spec.pg_pidfile and Path(spec.pg_pidfile).exists():
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(
                spec.pg_stop,
                cwd=spec.pg_cwd or None,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=STOP_TIMEOUT + 5,
                check=False,
            )
        # Only does anything if pg_ctl failed; SIGQUIT is PostgreSQL's immediate shutdown.
        _kill_from_pidfile(spec.pg_pidfile, signal.SIGQUIT)
    if spec.redis_pidfile:
        _kill_from_pidfile(spec.redis_pidfile, signal.SIGTERM)
    for path in spec.dirs:
        shutil.rmtree(path, ignore_errors=True)


def _kill_from_pidfile(pidfile: str, first: signal.Signals) -> None:
    try:
        pid = int(Path(pidfile).read_text(encoding="utf-8").split()[0])
    except (OSError, ValueError, IndexError):
        return
    for sig in (first, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):  # gone, or pid reused by someone else
            return
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline:
            if not _alive(pid):
                return
            time.sleep(0.02)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A daemon's parent is init, which may take a while to reap it (over a second in some
    # containers): a zombie has already exited.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def _watchdog(spec_json: str) -> None:
    spec = _Cleanup(**json.loads(spec_json))
    sys.stdin.buffer.read()  # returns at EOF, i.e. when the pytest process has exited
    _cleanup(spec)


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "--watchdog":
    _watchdog(sys.argv[2])
