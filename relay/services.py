"""Writes for upstream channels."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from accounts.selectors import operator_emails
from billing.selectors import uncollected_counts
from money import micros_to_usd
from relay.channel_health import alert_last_channel
from relay.models import Channel
from relay.selectors import Overreporting, channel_overreporting

log = logging.getLogger(__name__)

# Over-reports are counted over this window, the same day the channel list's
# "over-reported (24h)" column and reconciliation's uncollected findings look at.
OVERREPORT_WINDOW = dt.timedelta(hours=24)


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
    disabled = Channel.objects.filter(pk=channel_id, status=Channel.Status.ENABLED).update(
        status=Channel.Status.AUTO_DISABLED, disabled_reason=reason[:300]
    )
    if disabled:
        alert_last_channel.delay(channel_id)
    return bool(disabled)


def _keeps_overreporting(stats: Overreporting) -> bool:
    # Both thresholds: a count alone would flag a busy channel for a handful of odd
    # requests, a share alone a quiet channel for a single one.
    return (
        stats.overreported >= settings.CHANNEL_OVERREPORT_MIN_REQUESTS
        and stats.overreported * 100 >= settings.CHANNEL_OVERREPORT_MIN_PERCENT * stats.requests
    )


def channels_overreport_check(*, now: dt.datetime | None = None) -> list[int]:
    """Flag the channels that keep reporting usage beyond the requests' holds; clear the
    flags of channels quiet for a whole window. Returns the ids flagged by this run.

    A channel is flagged when, over the last OVERREPORT_WINDOW (or since an admin last
    acknowledged its flag, if later), at least CHANNEL_OVERREPORT_MIN_REQUESTS of its
    requests, and at least CHANNEL_OVERREPORT_MIN_PERCENT of them, were over-reported.
    Flagging is a conditional update, so only the run that sets the flag emails the
    operators: one email per flag, however often or concurrently the job runs. A flagged
    channel keeps serving; an admin disables it if they want it out of rotation.
    """
    now = now or timezone.now()
    since = now - OVERREPORT_WINDOW
    counts = uncollected_counts(since=since)
    # A flag stays up for at least a window, so that a burst is seen before it clears.
    Channel.objects.filter(overreport_flagged_at__lte=since).exclude(pk__in=list(counts)).update(
        overreport_flagged_at=None, overreport_note=""
    )
    candidates = [cid for cid, n in counts.items() if n >= settings.CHANNEL_OVERREPORT_MIN_REQUESTS]
    flagged: list[int] = []
    for channel in Channel.objects.filter(pk__in=candidates, overreport_flagged_at__isnull=True):
        start = max(since, channel.overreport_acknowledged_at or since)
        stats = channel_overreporting(channel_id=channel.pk, since=start)
        if not _keeps_overreporting(stats):
            continue
        hours = int(OVERREPORT_WINDOW.total_seconds() // 3600)
        period = f"in {hours} h" if start == since else "since the last acknowledgement"
        if _overreport_flag(channel=channel, stats=stats, period=period, now=now):
            flagged.append(channel.pk)
    return flagged


def _overreport_flag(
    *, channel: Channel, stats: Overreporting, period: str, now: dt.datetime
) -> bool:
    note = (
        f"{stats.overreported} of {stats.requests} requests ({stats.share:.1%}) reported usage "
        f"beyond their hold {period}; {micros_to_usd(stats.uncollected)} USD not charged"
    )
    claimed = Channel.objects.filter(pk=channel.pk, overreport_flagged_at__isnull=True).update(
        overreport_flagged_at=now, overreport_note=note[:300]
    )
    if not claimed:
        return False
    log.warning("channel %s flagged for over-reporting usage: %s", channel.pk, note)
    recipients = operator_emails()
    if not recipients:
        return True
    link = settings.SITE_URL.rstrip("/") + reverse("admin:relay_channel_change", args=[channel.pk])
    try:
        send_mail(
            f"[TokenHub] Channel {channel.name} keeps over-reporting usage",
            f"Channel {channel.name} (id {channel.pk}, {channel.type}): {note}.\n\n"
            "Customers were charged up to each request's hold and no more; the rest is paid "
            "to the upstream and not collected. The channel keeps serving. Check the "
            "upstream's usage reports, then disable the channel or acknowledge the flag in "
            f"the admin:\n{link}\n",
            None,
            recipients,
        )
    except OSError:  # smtplib's errors included
        # The flag stays set and shows in the admin, on /admin/status/ and in /metrics; a
        # mail server that is down must not keep the other channels from being flagged.
        log.exception("could not email the operators about channel %s", channel.pk)
    return True


def channels_overreport_acknowledge(*, channel_ids: Sequence[int]) -> list[int]:
    """Clear the over-reporting flag of the flagged channels among CHANNEL_IDS; the
    over-reports seen so far no longer count towards flagging them again. Returns the ids
    cleared."""
    now = timezone.now()
    with transaction.atomic():
        ids = list(
            Channel.objects.select_for_update()
            .filter(pk__in=channel_ids, overreport_flagged_at__isnull=False)
            .values_list("pk", flat=True)
        )
        Channel.objects.filter(pk__in=ids).update(
            overreport_flagged_at=None, overreport_note="", overreport_acknowledged_at=now
        )
    return ids
