"""Writes for upstream channels."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from relay.models import Channel


class InvalidChannel(ValueError):
    pass


def _clean_base_url(url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise InvalidChannel(f"base URL must be http(s)://host[/path], got {url!r}")
    return url.strip().rstrip("/")


def channel_create(
    *,
    name: str,
    type: str,  # noqa: A002 - mirrors the CLI flag and the model field
    base_url: str,
    api_keys: Sequence[str],
    models: Sequence[str],
    model_map: Mapping[str, str] | None = None,
    groups: Sequence[str] = (),
    priority: int = 0,
    weight: int = 1,
    options: Mapping[str, Any] | None = None,
) -> Channel:
    """Create an enabled channel; its upstream keys are encrypted before they are stored."""
    if type not in Channel.Type.values:
        raise InvalidChannel(f"unknown channel type {type!r}; one of {Channel.Type.values}")
    keys = [k.strip() for k in api_keys if k.strip()]
    if not keys:
        raise InvalidChannel("at least one upstream API key is required")
    model_names = [m.strip() for m in models if m.strip()]
    if not model_names:
        raise InvalidChannel("at least one model is required")
    if weight < 1:
        raise InvalidChannel("weight must be at least 1")
    return Channel.objects.create(
        name=name.strip() or type,
        type=type,
        base_url=_clean_base_url(base_url),
        api_keys="\n".join(keys),
        model_names=model_names,
        model_map=dict(model_map or {}),
        groups=[g.strip() for g in groups if g.strip()],
        priority=priority,
        weight=weight,
        options=dict(options or {}),
    )
