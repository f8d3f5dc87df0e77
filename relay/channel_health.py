"""Channel health: a tiny probe request per channel, and the periodic job that uses it.

A probe sends one short chat request of TokenHub's own ("ping", one output token) to the
channel's first model (or `options["probe_model"]`), in the channel's protocol. Probes
run from Celery and the admin, never on the relay's hot path, so they use their own
aiohttp session rather than the relay's loop-bound one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import aiohttp
import orjson
from celery import shared_task
from django.conf import settings
from django.core.mail import send_mail
from django.db.models import Q
from django.utils import timezone

from accounts.selectors import operator_emails
from relay import cooldown
from relay.catalog import ChannelInfo, channel_info
from relay.channel_types import chat_target, protocol_of
from relay.formats import ir
from relay.models import Channel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    latency_ms: int
    error: str = ""  # a status or exception class: never the upstream's body


def probe_model(channel: ChannelInfo) -> str:
    model = channel.options.get("probe_model")
    if isinstance(model, str) and model:
        return model
    return sorted(channel.models)[0] if channel.models else ""


async def channel_probe(channel: ChannelInfo) -> ProbeResult:
    """Send one tiny request to CHANNEL; ok when it answers 2xx within the timeout."""
    model = probe_model(channel)
    if not model:
        return ProbeResult(ok=False, latency_ms=0, error="the channel lists no model to probe")
    protocol = protocol_of(channel)
    upstream = channel.upstream_model(model)
    request = ir.ChatRequest(
        model=upstream,
        messages=[ir.Message(role="user", parts=[ir.TextPart("ping")])],
        max_output_tokens=1,
    )
    url, headers = chat_target(channel, upstream, False, {})
    body = orjson.dumps(protocol.from_ir(request, upstream))
    timeout = aiohttp.ClientTimeout(total=settings.CHANNEL_PROBE_TIMEOUT)
    started = time.monotonic()
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(url, data=body, headers=headers, allow_redirects=False) as response,
        ):
            await response.read()
            status = response.status
    except TimeoutError:
        return ProbeResult(ok=False, latency_ms=_since(started), error="timed out")
    except aiohttp.ClientError as exc:
        return ProbeResult(ok=False, latency_ms=_since(started), error=type(exc).__name__)
    if 200 <= status < 300:
        return ProbeResult(ok=True, latency_ms=_since(started))
    return ProbeResult(ok=False, latency_ms=_since(started), error=f"upstream answered {status}")


def _since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def channel_test(*, channel: Channel) -> ProbeResult:
    """Probe CHANNEL now and record the result on it (the admin's "test now")."""
    try:
        info = channel_info(channel)
    except ValueError:
        result = ProbeResult(ok=False, latency_ms=0, error="the channel's keys cannot be decrypted")
    else:
        result = asyncio.run(channel_probe(info))
    _record(channel.pk, result)
    return result


def _record(channel_id: int, result: ProbeResult) -> None:
    Channel.objects.filter(pk=channel_id).update(
        probed_at=timezone.now(),
        probe_ok=result.ok,
        probe_latency_ms=result.latency_ms,
        probe_error=result.error[:300],
    )


def channels_probe() -> dict[int, ProbeResult]:
    """Probe auto-disabled and cooling channels; bring back the ones that answer.

    An auto-disabled channel that answers is enabled again; a cooling one has its
    cooldown cleared. Channels an admin disabled are left alone.
    """
    cooling = cooldown.cooling_channel_ids()
    rows = list(
        Channel.objects.filter(
            Q(status=Channel.Status.AUTO_DISABLED)
            | Q(status=Channel.Status.ENABLED, pk__in=cooling)
        )
    )
    results: dict[int, ProbeResult] = {}
    for row in rows:
        result = channel_test(channel=row)
        results[row.pk] = result
        if not result.ok:
            continue
        if row.status == Channel.Status.AUTO_DISABLED:
            # Conditional, so an admin's "disable" in the meantime wins.
            Channel.objects.filter(pk=row.pk, status=Channel.Status.AUTO_DISABLED).update(
                status=Channel.Status.ENABLED, disabled_reason=""
            )
            log.info("channel %s answered its probe and is enabled again", row.pk)
        cooldown.cooldown_clear(row.pk)
    return results


def models_left_without_channel(*, channel_id: int) -> list[str]:
    """Models of CHANNEL that no other enabled channel serves."""
    channel = Channel.objects.get(pk=channel_id)
    others: set[str] = set()
    for names in (
        Channel.objects.filter(status=Channel.Status.ENABLED)
        .exclude(pk=channel_id)
        .values_list("model_names", flat=True)
    ):
        others.update(names)
    return sorted(set(channel.model_names) - others)


def last_channel_alert(*, channel_id: int) -> list[str]:
    """Email the admins when disabling CHANNEL left some models with no channel."""
    orphaned = models_left_without_channel(channel_id=channel_id)
    recipients = operator_emails()
    if orphaned and recipients:
        channel = Channel.objects.get(pk=channel_id)
        send_mail(
            f"[TokenHub] Channel {channel.name} disabled; {len(orphaned)} model(s) left unserved",
            f"Channel {channel.name} (id {channel.pk}, {channel.type}) was disabled "
            f"automatically: {channel.disabled_reason}\n\n"
            "These models have no other enabled channel, so requests for them now fail:\n"
            + "\n".join(f"- {m}" for m in orphaned)
            + "\n\nFix the channel's credentials and enable it in the admin, or add a channel.",
            None,
            recipients,
        )
    return orphaned


# Queued by relay.services.channel_auto_disable; defined here, next to what it runs, so
# services need not import the task modules (registered under its historical name).
@shared_task(name="relay.tasks.alert_last_channel")
def alert_last_channel(channel_id: int) -> list[str]:
    return last_channel_alert(channel_id=channel_id)
