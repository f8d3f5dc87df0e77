"""Reads about channels for the admin: recent success rate and latency."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import Count, Q
from django.utils import timezone

from logs.models import RequestLog


@dataclass(frozen=True)
class ChannelStats:
    requests: int
    succeeded: int
    p50_latency_ms: int | None

    @property
    def success_rate(self) -> float | None:
        return self.succeeded / self.requests if self.requests else None


def channel_stats(
    *, channel_ids: list[int], window: dt.timedelta = dt.timedelta(hours=1)
) -> dict[int, ChannelStats]:
    """Requests, successes and median latency per channel over the recent WINDOW."""
    recent = RequestLog.objects.filter(
        created_at__gte=timezone.now() - window, channel_id__in=channel_ids
    )
    counts = recent.values("channel_id").annotate(
        n=Count("id"), ok=Count("id", filter=Q(status_code__lt=400))
    )
    stats: dict[int, ChannelStats] = {}
    for row in counts.order_by():
        cid, n = row["channel_id"], row["n"]
        # The median row by latency: one indexed range scan per channel on the admin page.
        median = (
            recent.filter(channel_id=cid)
            .order_by("latency_ms")
            .values_list("latency_ms", flat=True)[n // 2 : n // 2 + 1]
        )
        stats[cid] = ChannelStats(
            requests=n, succeeded=row["ok"], p50_latency_ms=next(iter(median), None)
        )
    return stats
