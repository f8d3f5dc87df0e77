"""Writes for upstream channels."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from django.db import transaction

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
    strict_fields: bool = False,
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
        strict_fields=strict_fields,
    )


def channels_assign_models(*, channel_ids: Sequence[int], models: Sequence[str], mode: str) -> int:
    """Add, remove or replace MODELS on every channel of CHANNEL_IDS; returns channels changed.

    Atomic. A channel is never left without a model: removing its last one is refused
    (InvalidChannel) and nothing changes.
    """
    names = [m.strip() for m in models if m.strip()]
    if not names:
        raise InvalidChannel("list at least one model")
    if mode not in ("add", "remove", "replace"):
        raise InvalidChannel(f"unknown mode {mode!r}")
    changed = 0
    with transaction.atomic():
        for channel in Channel.objects.select_for_update().filter(pk__in=channel_ids):
            current = list(channel.model_names)
            if mode == "add":
                updated = current + [n for n in names if n not in current]
            elif mode == "remove":
                updated = [n for n in current if n not in names]
            else:
                updated = list(dict.fromkeys(names))
            if not updated:
                raise InvalidChannel(f"channel {channel.name} would be left without a model")
            if updated != current:
                channel.model_names = updated
                channel.save(update_fields=["model_names", "updated_at"])
                changed += 1
    return changed


def channel_auto_disable(*, channel_id: int, reason: str) -> bool:
    """Take an enabled channel out of rotation because the upstream refused it (bad
    credentials, exhausted account). Only the call that flips it returns True, and that one
    asks the worker to alert operators if a model is left without a channel."""
    from relay.tasks import alert_last_channel

    disabled = Channel.objects.filter(pk=channel_id, status=Channel.Status.ENABLED).update(
        status=Channel.Status.AUTO_DISABLED, disabled_reason=reason[:300]
    )
    if disabled:
        alert_last_channel.delay(channel_id)
    return bool(disabled)
