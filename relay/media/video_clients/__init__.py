"""Upstream video task clients: submit a task, read its status, cancel it, fetch its file.

base.py holds the OpenAI Videos request and the task state every client speaks; each
provider's client (sora.py, seedance.py) imports it. relay/channel_types.py names which
client a channel type uses; `video_adapter` finds it.
"""

from __future__ import annotations

from relay.channel_types import video_client
from relay.media.video_clients import seedance, sora
from relay.media.video_clients.base import VideoAdapter

ADAPTERS: dict[str, VideoAdapter] = {"sora": sora.ADAPTER, "seedance": seedance.ADAPTER}


def video_adapter(channel_type: str) -> VideoAdapter | None:
    """The video task adapter of a channel type (None: it serves no video)."""
    name = video_client(channel_type)
    return ADAPTERS[name] if name else None
