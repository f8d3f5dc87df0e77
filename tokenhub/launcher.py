"""`make run`: the ASGI server and a Celery worker with embedded beat, stopped together.

If either process exits, or on Ctrl-C / SIGTERM, both are stopped.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", default="8000")
    args = parser.parse_args()
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tokenhub.settings"}
    drain = float(env.get("SHUTDOWN_DRAIN_SECONDS") or 20)
    commands = [
        [str(BIN / "uvicorn"), "tokenhub.asgi:application", "--host", args.host,
         "--port", str(args.port), "--lifespan", "on", "--no-access-log", "--no-proxy-headers",
         "--timeout-graceful-shutdown", str(int(drain))],
        # -B embeds beat in the worker: one process fewer for the embedded mode.
        [str(BIN / "celery"), "-A", "tokenhub", "worker", "-B", "--pool", "solo",
         "-l", "WARNING"],
    ]  # fmt: skip
    procs = [subprocess.Popen(cmd, env=env) for cmd in commands]  # noqa: S603
    print(
        f"TokenHub on http://{args.host}:{args.port}/ (admin: /admin/) — Ctrl-C stops", flush=True
    )
    if not any(env.get(name) for name in ("DATABASE_URL", "EMAIL_BACKEND", "EMAIL_HOST")):
        # The same rule as settings: embedded mode without a mail server keeps emails.
        print("No email server configured: emails are kept at /admin/mailbox/", flush=True)

    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    while not stopping and all(p.poll() is None for p in procs):
        time.sleep(0.2)
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    # The server drains its requests for up to DRAIN seconds, then settles what it cut.
    deadline = time.monotonic() + drain + 15
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
    return 0 if stopping else 1


if __name__ == "__main__":
    sys.exit(main())
