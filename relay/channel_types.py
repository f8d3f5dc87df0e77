"""Everything TokenHub knows about each channel type, in one table keyed by `Channel.Type`.

A channel type is a wire protocol (relay/protocols.py) spoken at some URL shape with some
credentials, plus what else it serves. Adding a provider is one module in relay/formats/
for its protocol (if it is new) and one entry in `CHANNEL_TYPES`; nothing else in the
relay tests a channel's type string.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from relay.affinity import pick_key
from relay.catalog import ChannelInfo
from relay.models import Channel
from relay.protocols import ANTHROPIC, GEMINI, OPENAI, RESPONSES, WireProtocol

ANTHROPIC_VERSION = "2023-06-01"
ImageStyle = Literal["openai", "doubao", "gemini"]
# Which video task client (relay/media/video_clients/) serves the type's videos.
VideoClient = Literal["sora", "seedance"]
_BASE_HEADERS = {"content-type": "application/json", "accept-encoding": "identity"}


def _bearer(key: str) -> dict[str, str]:
    return {"authorization": "Bearer " + key}


def _plain_url(channel: ChannelInfo, upstream_model: str, path: str) -> str:
    return channel.base_url + path


def _azure_url(channel: ChannelInfo, upstream_model: str, path: str) -> str:
    version = channel.options.get("api_version", "2024-10-21")
    return f"{channel.base_url}/openai/deployments/{upstream_model}{path}?api-version={version}"


def _gemini_url(channel: ChannelInfo, upstream_model: str, action: str) -> str:
    return f"{channel.base_url}/v1beta/models/{upstream_model}:{action}"


def _anthropic_headers(client: dict[str, str]) -> dict[str, str]:
    # The client's version and betas decide the upstream's behaviour; they go on.
    headers = {"anthropic-version": client.get("anthropic-version", ANTHROPIC_VERSION)}
    if client.get("anthropic-beta"):
        headers["anthropic-beta"] = client["anthropic-beta"]
    return headers


def _no_headers(client: dict[str, str]) -> dict[str, str]:
    return {}


@dataclass(frozen=True, slots=True)
class ChannelType:
    protocol: WireProtocol  # what its chat endpoint speaks
    # (channel, upstream model, path or action) -> URL
    url: Callable[[ChannelInfo, str, str], str]
    auth: Callable[[str], dict[str, str]]  # upstream key -> credential headers
    chat_path: Callable[[bool], str]  # stream? -> path or action of a chat call
    count_path: str | None = None  # the protocol's own token counter, if any
    # Client headers that go on to the upstream (e.g. anthropic-version).
    forwarded: Callable[[dict[str, str]], dict[str, str]] = _no_headers
    openai_endpoints: bool = False  # /completions, /embeddings in OpenAI's format
    gemini_embeddings: bool = False  # :embedContent, :batchEmbedContents
    images: ImageStyle | None = None
    videos: VideoClient | None = None

    def target(
        self, channel: ChannelInfo, upstream_model: str, path: str, *,
        client_headers: dict[str, str] | None = None, affinity: bytes = b"",
    ) -> tuple[str, dict[str, str]]:  # fmt: skip
        """URL and headers for PATH (or a Gemini action) on CHANNEL."""
        headers = {**_BASE_HEADERS, **self.auth(pick_key(channel, affinity))}
        headers.update(self.forwarded(client_headers or {}))
        return self.url(channel, upstream_model, path), headers


def _chat_completions(stream: bool) -> str:
    return "/chat/completions"


CHANNEL_TYPES: dict[str, ChannelType] = {
    Channel.Type.OPENAI: ChannelType(
        protocol=OPENAI,
        url=_plain_url,
        auth=_bearer,
        chat_path=_chat_completions,
        openai_endpoints=True,
        images="openai",
        videos="sora",
    ),
    Channel.Type.AZURE_OPENAI: ChannelType(
        protocol=OPENAI,
        url=_azure_url,
        auth=lambda key: {"api-key": key},
        chat_path=_chat_completions,
        openai_endpoints=True,
    ),
    Channel.Type.DOUBAO: ChannelType(
        protocol=OPENAI,
        url=_plain_url,
        auth=_bearer,
        chat_path=_chat_completions,
        openai_endpoints=True,
        images="doubao",
        videos="seedance",
    ),
    Channel.Type.OPENAI_RESPONSES: ChannelType(
        protocol=RESPONSES, url=_plain_url, auth=_bearer, chat_path=lambda stream: "/responses"
    ),
    Channel.Type.ANTHROPIC: ChannelType(
        protocol=ANTHROPIC,
        url=_plain_url,
        auth=lambda key: {"x-api-key": key},
        chat_path=lambda stream: "/v1/messages",
        count_path="/v1/messages/count_tokens",
        forwarded=_anthropic_headers,
    ),
    Channel.Type.GEMINI: ChannelType(
        protocol=GEMINI,
        url=_gemini_url,
        auth=lambda key: {"x-goog-api-key": key},
        chat_path=lambda stream: "streamGenerateContent?alt=sse" if stream else "generateContent",
        count_path="countTokens",
        gemini_embeddings=True,
        images="gemini",
    ),
}

CHAT_TYPES = frozenset(CHANNEL_TYPES)
OPENAI_TYPES = frozenset(t for t, k in CHANNEL_TYPES.items() if k.openai_endpoints)
GEMINI_EMBED_TYPES = OPENAI_TYPES | {t for t, k in CHANNEL_TYPES.items() if k.gemini_embeddings}
IMAGE_TYPES = frozenset(t for t, k in CHANNEL_TYPES.items() if k.images)
VIDEO_TYPES = frozenset(t for t, k in CHANNEL_TYPES.items() if k.videos)


def video_client(channel_type: str) -> VideoClient | None:
    """The name of the video task client of a channel type (None: it serves no video)."""
    kind = CHANNEL_TYPES.get(channel_type)
    return kind.videos if kind else None


def is_seedance(channel_type: str) -> bool:
    """Seedance bills video by output tokens and serves no thumbnails: its tasks differ."""
    return video_client(channel_type) == "seedance"


def protocol_of(channel: ChannelInfo) -> WireProtocol:
    return CHANNEL_TYPES[channel.type].protocol


def chat_target(
    channel: ChannelInfo,
    upstream_model: str,
    stream: bool,
    client_headers: dict[str, str],
    affinity: bytes = b"",
) -> tuple[str, dict[str, str]]:
    """URL and headers for a chat-type call to CHANNEL in its own protocol."""
    kind = CHANNEL_TYPES[channel.type]
    return kind.target(
        channel, upstream_model, kind.chat_path(stream),
        client_headers=client_headers, affinity=affinity,
    )  # fmt: skip


def openai_target(
    channel: ChannelInfo, path: str, upstream_model: str, affinity: bytes = b""
) -> tuple[str, dict[str, str]]:
    """URL and headers for an OpenAI-format PATH such as '/embeddings'."""
    return CHANNEL_TYPES[channel.type].target(channel, upstream_model, path, affinity=affinity)
