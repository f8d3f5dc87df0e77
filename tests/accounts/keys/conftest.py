"""Relay fixtures for end-to-end tests of keys made through /api/v1/keys."""

from tests.relay.conftest import (  # noqa: F401  (fixtures)
    customer,
    fake,
    fake_upstream,
    openai_channel,
    priced,
    ready,
    relay,
    relay_server,
)
from tests.relay.processes import two_relays  # noqa: F401  (fixture)
