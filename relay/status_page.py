"""The admin's status page (`/admin/status/`): the last hour of traffic, per minute and
per channel, from request metadata, and the channels flagged for over-reporting."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib.admin.views.decorators import staff_member_required
from django.db.models import Count, F, Q, Sum
from django.db.models.functions import TruncMinute
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from logs.models import RequestLog
from relay.models import Channel
from relay.selectors import channels_overreport_flagged


def traffic_last_hour(*, now: dt.datetime | None = None) -> dict[str, Any]:
    now = now or timezone.now()
    since = now - dt.timedelta(hours=1)
    recent = RequestLog.objects.filter(created_at__gte=since)
    tokens = F("prompt_tokens") + F("completion_tokens")
    per_minute = list(
        recent.annotate(minute=TruncMinute("created_at", tzinfo=dt.UTC))
        .values("minute")
        .annotate(
            requests=Count("id"),
            tokens=Sum(tokens),
            errors=Count("id", filter=Q(status_code__gte=400)),
        )
        .order_by("minute")
    )
    channels = dict(Channel.objects.values_list("pk", "name"))
    per_channel = [
        {
            **row,
            "name": channels.get(row["channel_id"], "-") if row["channel_id"] else "-",
            "error_rate": row["errors"] / row["requests"],
            # The share of prompt tokens read from the provider's prompt cache: low on a
            # channel agents use means their conversations are not staying on it.
            "cache_hit_rate": row["cache_read"] / row["prompt"] if row["prompt"] else None,
        }
        for row in recent.values("channel_id")
        .annotate(
            requests=Count("id"),
            tokens=Sum(tokens),
            errors=Count("id", filter=Q(status_code__gte=400)),
            prompt=Sum("prompt_tokens"),
            cache_read=Sum("cache_read_tokens"),
        )
        .order_by("-requests")
    ]
    total = sum(row["requests"] for row in per_minute)
    total_tokens = sum(row["tokens"] or 0 for row in per_minute)
    errors = sum(row["errors"] for row in per_minute)
    return {
        "since": since,
        "per_minute": per_minute,
        "per_channel": per_channel,
        "requests_per_minute": total / 60,
        "tokens_per_minute": total_tokens / 60,
        "error_rate": errors / total if total else None,
        "requests": total,
    }


@staff_member_required
def status_page(request: HttpRequest) -> HttpResponse:
    context = {
        "title": "Status: the last hour",
        **traffic_last_hour(),
        "overreporting": list(channels_overreport_flagged()),
    }
    return render(request, "admin/status.html", context)
