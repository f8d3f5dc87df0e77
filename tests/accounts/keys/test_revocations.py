"""The key-change broadcast: the publisher waits for every listening relay process, but
never longer than KEY_CHANGE_ACK_SECONDS for one that does not answer."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from django.conf import settings

from accounts.revocations import (
    KEY_CHANGE_ACK_SECONDS,
    KEY_CHANGES_CHANNEL,
    ack_list,
    key_change_publish,
)

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


@pytest.fixture
def sync_redis() -> Any:
    if not settings.REDIS_URL:
        pytest.skip("needs Redis")
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    yield client
    client.close()


def test_it_waits_for_the_listeners_acknowledgement_then_cleans_up(
    sync_redis: Any, django_capture_on_commit_callbacks: Any
) -> None:
    import threading

    listener = sync_redis.pubsub(ignore_subscribe_messages=True)
    listener.subscribe(KEY_CHANGES_CHANNEL)
    listener.get_message(timeout=1)  # the subscription confirmation
    seen: list[str] = []

    def acknowledge() -> None:
        message = None
        while message is None:
            message = listener.get_message(timeout=5)
        seen.append(message["data"].decode())
        sync_redis.rpush(ack_list(seen[0]), 1)

    thread = threading.Thread(target=acknowledge)
    thread.start()
    with django_capture_on_commit_callbacks(execute=True):
        key_change_publish()
    # The publisher returned only after the acknowledgement it waited for.
    assert seen
    thread.join(timeout=5)
    assert not sync_redis.exists(ack_list(seen[0]))
    listener.close()


def test_it_gives_up_on_a_listener_that_never_answers(
    sync_redis: Any, django_capture_on_commit_callbacks: Any, caplog: Any
) -> None:
    silent = sync_redis.pubsub()
    silent.subscribe(KEY_CHANGES_CHANNEL)
    silent.get_message(timeout=1)

    started = time.monotonic()
    with django_capture_on_commit_callbacks(execute=True):
        key_change_publish()
    waited = time.monotonic() - started

    assert KEY_CHANGE_ACK_SECONDS * 0.8 <= waited < KEY_CHANGE_ACK_SECONDS + 1
    # (Relay servers of other tests in this session may listen, and answer, too.)
    assert re.search(r"acknowledged by \d+ of \d+ relay listeners", caplog.text)
    silent.close()


def test_it_does_not_wait_without_silent_listeners(
    sync_redis: Any, django_capture_on_commit_callbacks: Any
) -> None:
    started = time.monotonic()
    with django_capture_on_commit_callbacks(execute=True):
        key_change_publish()
    assert time.monotonic() - started < KEY_CHANGE_ACK_SECONDS / 2
