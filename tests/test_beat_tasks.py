"""Every periodic job beat schedules runs on both databases, with nothing to do and with
Redis or without (`make run`: SQLite, no Redis, beat every hour). A job that only works on
PostgreSQL would fail there, silently, each time beat sends it."""

from __future__ import annotations

import importlib

import pytest
from django.conf import settings

pytestmark = [pytest.mark.embedded, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("entry", sorted(settings.CELERY_BEAT_SCHEDULE))
def test_a_scheduled_job_runs_on_this_database(entry: str) -> None:
    schedule = settings.CELERY_BEAT_SCHEDULE[entry]
    module, _, name = schedule["task"].rpartition(".")
    task = getattr(importlib.import_module(module), name)
    # Run here, as the worker would run it: its exceptions propagate.
    result = task.apply(args=schedule.get("args", ()), kwargs=schedule.get("kwargs", {}))
    assert result.successful(), result.traceback
