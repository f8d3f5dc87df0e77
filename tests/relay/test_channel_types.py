"""The channel-type registry: one entry per Channel.Type, holding all a provider needs."""

from __future__ import annotations

import pytest

from relay.catalog import ChannelInfo
from relay.channel_types import CHANNEL_TYPES, chat_target, openai_target
from relay.models import Channel


def _channel(kind: str, **options: str) -> ChannelInfo:
    return ChannelInfo(
        id=1, name=kind, type=kind, base_url="https://up.example", keys=("k1",),
        models=frozenset({"m"}), model_map={}, groups=frozenset(), priority=0, weight=1,
        options=dict(options),
    )  # fmt: skip


def test_every_channel_type_has_one_registry_entry() -> None:
    assert set(CHANNEL_TYPES) == set(Channel.Type.values)


@pytest.mark.parametrize(
    ("kind", "stream", "url", "auth"),
    [
        ("openai", False, "https://up.example/chat/completions", ("authorization", "Bearer k1")),
        ("doubao", True, "https://up.example/chat/completions", ("authorization", "Bearer k1")),
        (
            "azure-openai",
            False,
            "https://up.example/openai/deployments/m/chat/completions?api-version=2024-10-21",
            ("api-key", "k1"),
        ),
        ("openai-responses", True, "https://up.example/responses", ("authorization", "Bearer k1")),
        ("anthropic", True, "https://up.example/v1/messages", ("x-api-key", "k1")),
        (
            "gemini",
            True,
            "https://up.example/v1beta/models/m:streamGenerateContent?alt=sse",
            ("x-goog-api-key", "k1"),
        ),
    ],
)
def test_it_builds_each_types_chat_call(
    kind: str, stream: bool, url: str, auth: tuple[str, str]
) -> None:
    got_url, headers = chat_target(_channel(kind), "m", stream, {})

    assert got_url == url
    assert headers[auth[0]] == auth[1]


def test_anthropic_channels_get_the_clients_version_and_betas() -> None:
    client = {"anthropic-version": "2024-01-01", "anthropic-beta": "a,b", "x-other": "no"}

    _, headers = chat_target(_channel("anthropic"), "m", False, client)

    assert (headers["anthropic-version"], headers["anthropic-beta"]) == ("2024-01-01", "a,b")
    assert "x-other" not in headers
    assert chat_target(_channel("anthropic"), "m", False, {})[1]["anthropic-version"] == (
        "2023-06-01"
    )


def test_azure_takes_its_api_version_from_the_channel_options() -> None:
    url, _ = openai_target(_channel("azure-openai", api_version="2025-01-01"), "/embeddings", "e")

    assert url == "https://up.example/openai/deployments/e/embeddings?api-version=2025-01-01"
