"""The embedded Celery worker (filesystem broker, as `make run` starts it) writes under var/
only: nothing, not even kombu's exchange table (`control/`), in its working directory."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.embedded]

REPO = Path(__file__).resolve().parent.parent
_OUTER = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "TOKENHUB_VAR_DIR")


def test_the_embedded_worker_keeps_its_files_under_var(tmp_path: Path) -> None:
    cwd, var = tmp_path / "cwd", tmp_path / "var"
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items() if k.removesuffix("_FILE") not in _OUTER}
    env |= {
        "TOKENHUB_VAR_DIR": str(var),
        "PYTHONPATH": str(REPO),
        "DJANGO_SETTINGS_MODULE": "tokenhub.settings",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "tokenhub", "worker", "-B", "--pool", "solo",
         "-l", "WARNING", "--without-heartbeat", "--without-mingle", "--without-gossip"],
        cwd=cwd,
        env=env,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not list((var / "celery" / "control").glob("*.exchange")):
            assert proc.poll() is None, "the worker exited"
            assert time.monotonic() < deadline, "the worker declared no exchange in time"
            time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    assert list(cwd.iterdir()) == []
    assert (var / "celerybeat-schedule").exists() or list(var.glob("celerybeat-schedule*"))
