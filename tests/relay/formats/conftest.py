"""Fixtures for the format tests: a canned upstream for the official SDKs to call."""

from collections.abc import Iterator

import pytest

from tests.relay.formats.canned import CannedServer


@pytest.fixture
def upstream() -> Iterator[CannedServer]:
    with CannedServer() as server:
        yield server
