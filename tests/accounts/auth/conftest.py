from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.core.cache import cache


@pytest.fixture(autouse=True)
def _fresh_rate_limits() -> Iterator[None]:
    """allauth's rate limits live in the cache (Redis in the PostgreSQL run): start clean."""
    cache.clear()
    yield
    cache.clear()
