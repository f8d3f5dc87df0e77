"""The channel margin alert: the operators get one email per channel and UTC day when a
channel's margin over the last 24 hours falls below the percentage set on it
(`Channel.margin_alert_below`). Figures and definitions: billing/margins.py."""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal

from django.conf import settings
from django.core.mail import send_mail
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from accounts.selectors import operator_emails
from billing.margins import MarginRow, channel_margins
from money import micros_to_usd
from relay.models import Channel

log = logging.getLogger(__name__)
WINDOW = dt.timedelta(hours=24)


def margin_below(row: MarginRow, threshold: Decimal) -> bool:
    """Is ROW's margin under THRESHOLD percent of its revenue? Upstream cost with no
    revenue at all is always under (an infinite loss); no traffic never is."""
    if row.revenue <= 0:
        return row.upstream_cost > 0
    # Compared exactly, not on the rounded percentage shown.
    return Decimal(row.margin) * 100 < threshold * row.revenue


def margin_alerts_check(*, now: dt.datetime | None = None) -> int:
    """Email the operators about each channel whose margin over the last 24 hours is below
    its threshold; returns how many channels were alerted.

    At most one email per channel per UTC day, however often or concurrently this runs: the
    conditional update of `margin_alerted_on` to today is the claim, and only the run that
    makes it sends. A failed send gives the claim back, so the next run tries again."""
    now = now or timezone.now()
    today = now.astimezone(dt.UTC).date()
    not_today = Q(margin_alerted_on__isnull=True) | Q(margin_alerted_on__lt=today)
    channels = list(Channel.objects.filter(not_today, margin_alert_below__isnull=False))
    if not channels:
        return 0
    figures = channel_margins(since=now - WINDOW, until=now, channel_ids=[c.pk for c in channels])
    alerted = 0
    for channel in channels:
        row = figures.get(channel.pk)
        threshold = channel.margin_alert_below
        if row is None or threshold is None or not margin_below(row, threshold):
            continue
        claimed = Channel.objects.filter(not_today, pk=channel.pk).update(margin_alerted_on=today)
        if not claimed:
            continue  # another run alerted it today
        log.warning("channel %s margin below %s%% over 24 h", channel.pk, threshold)
        if _email(channel=channel, row=row, threshold=threshold):
            alerted += 1
        else:
            Channel.objects.filter(pk=channel.pk, margin_alerted_on=today).update(
                margin_alerted_on=channel.margin_alerted_on
            )
    return alerted


def _email(*, channel: Channel, row: MarginRow, threshold: Decimal) -> bool:
    recipients = operator_emails()
    if not recipients:
        return True  # nobody to tell; the page shows it
    percent = "-" if row.margin_percent is None else f"{row.margin_percent}%"
    site = settings.SITE_URL.rstrip("/")
    lines = [
        f"Channel {channel.name} (id {channel.pk}, {channel.type}) over the last 24 hours:",
        "",
        f"- requests: {row.requests}",
        f"- revenue: {micros_to_usd(row.revenue)} USD",
        f"- upstream cost: {micros_to_usd(row.upstream_cost)} USD",
        f"- margin: {micros_to_usd(row.margin)} USD ({percent}), "
        f"below your alert threshold of {threshold}%",
    ]
    if row.uncollected:
        lines.append(
            f"- of the upstream cost, {micros_to_usd(row.uncollected)} USD was reported "
            "beyond the requests' holds and not charged"
        )
    if row.uncosted:
        lines.append(
            f"- {row.uncosted} request(s) have no recorded upstream cost: the margin "
            "leaves them out of the cost"
        )
    lines += [
        "",
        "Check the channel's cost sheet and multiplier and the prices you sell its models at:",
        site + reverse("admin:margins") + "?group=channel",
        site + reverse("admin:relay_channel_change", args=[channel.pk]),
        "",
        "This alert is sent at most once a day per channel.",
    ]
    try:
        send_mail(
            f"[TokenHub] Channel {channel.name}: margin below {threshold}% over 24 h",
            "\n".join(lines) + "\n",
            None,
            recipients,
        )
    except OSError:  # smtplib's errors included
        log.exception("could not email the operators about channel %s's margin", channel.pk)
        return False
    return True
