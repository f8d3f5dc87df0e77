import subprocess

import pytest

from relay import tokens
from tests.relay.formats.test_properties_relay import *  # noqa: F403
from tests.relay.formats.test_properties_relay import served  # noqa: F401


@pytest.fixture(autouse=True)
def _old_tokens(monkeypatch):
    src = subprocess.run(["git", "show", "HEAD:relay/tokens.py"], capture_output=True, text=True).stdout
    ns: dict = {}
    exec(compile(src, "old", "exec"), ns)
    monkeypatch.setattr(tokens, "_text_bytes", ns["_text_bytes"])
