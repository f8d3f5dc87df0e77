"""Reads about channels for the admin: recent success rate and latency, over-reporting."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from billing.selectors import uncollected_counts, uncollected_recent
from logs.models import RequestLog
from relay.models import Channel


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


@dataclass(frozen=True)
class Overreporting:
    overreported: int  # requests whose reported usage was worth more than their hold
    requests: int  # requests the channel served, never fewer than `overreported`
    uncollected: int  # micro-USD not charged

    @property
    def share(self) -> float:
        return self.overreported / self.requests if self.requests else 0.0


def channel_overreporting(*, channel_id: int, since: dt.datetime) -> Overreporting:
    """How often CHANNEL reported usage beyond the requests' holds since SINCE."""
    over = uncollected_counts(since=since, channel_ids=[channel_id]).get(channel_id, 0)
    served = RequestLog.objects.filter(channel_id=channel_id, created_at__gte=since).count()
    return Overreporting(
        overreported=over,
        # Log rows may be missing (a purge, a settlement that could not log): the share is
        # then taken over the over-reported requests alone rather than dividing by zero.
        requests=max(served, over),
        uncollected=uncollected_recent(channel_ids=[channel_id], since=since).get(channel_id, 0),
    )


def channels_overreport_flagged() -> QuerySet[Channel]:
    """Channels flagged for over-reporting, longest flagged first."""
    return Channel.objects.filter(overreport_flagged_at__isnull=False).order_by(
        "overreport_flagged_at"
    )


def channel_overreport_flags() -> dict[int, bool]:
    """Every channel's id and whether it is flagged for over-reporting."""
    rows = Channel.objects.values_list("pk", "overreport_flagged_at")
    return {pk: flagged_at is not None for pk, flagged_at in rows}
