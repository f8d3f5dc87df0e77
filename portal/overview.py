"""The portal's home (`/dashboard/`): balance, usage totals and charts, or first steps."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import pgettext

from accounts.access import Capability, capability_required
from accounts.http import PortalRequest
from accounts.models import ApiKey
from accounts.selectors import keys_visible_to, user_can_create_keys
from billing.models import LowBalanceAlert, Wallet
from logs.selectors import (
    USAGE_RANGES,
    FilterError,
    UsageChart,
    UsageSeries,
    usage_chart,
    usage_exists,
    usage_range_from,
)
from logs.usage import usage_overview


def _chart_data(chart: UsageChart, zone: str) -> dict[str, Any]:
    """What static/js/charts.js draws: bucket starts as epoch milliseconds, one series per
    group, the totals and the error rate. Money stays in integer micro-USD."""
    span = chart.range

    def series(s: UsageSeries) -> dict[str, Any]:
        return {"name": s.name, "other": s.other, "requests": s.requests, "errors": s.errors,
                "tokens": s.tokens, "cost": s.cost}  # fmt: skip

    return {
        "range": span.name,
        "step": span.step,
        "zone": zone,
        "split": chart.split,
        "buckets": [int(start.timestamp() * 1000) for start in span.starts],
        "until": int(span.until.timestamp() * 1000),
        "groups": [series(s) for s in chart.groups],
        "total": series(chart.total),
        "error_rate": chart.total.error_rate,
        # The charts' words, translated here so that the script holds none.
        "labels": {
            "cost": _("Cost"),
            "tokens": _("Tokens"),
            "requests": _("Requests"),
            "errorRate": _("Error rate"),
            "total": pgettext("sum of a column", "Total"),
            "usd": _("US dollars"),
            "percent": _("Failed requests (%)"),
            "errorsOf": _("%(errors)s of %(requests)s failed"),
        },
    }


def _bucket_rows(chart: UsageChart) -> list[dict[str, Any]]:
    """The totals per bucket, for the table that stands in for the charts without JavaScript."""
    t = chart.total
    return [
        {"start": start, "day": start.date(), "requests": t.requests[i], "errors": t.errors[i],
         "tokens": t.tokens[i], "cost": t.cost[i]}
        for i, start in enumerate(chart.range.starts)
    ]  # fmt: skip


def _banner_threshold(wallet: Wallet | None) -> int:
    """The organization's own low-balance threshold when it set one, else the default."""
    alert = LowBalanceAlert.objects.filter(wallet=wallet).first() if wallet else None
    return alert.threshold if alert else settings.LOW_BALANCE_BANNER_MICROS


@capability_required(Capability.VIEW_ORG)
def overview(request: PortalRequest) -> HttpResponse:
    membership = request.membership
    wallet = Wallet.objects.filter(organization_id=membership.organization_id).first()
    available = wallet.available if wallet else 0
    context: dict[str, Any] = {
        "section": "overview",
        "params": request.GET,
        "balance": wallet.balance if wallet else 0,
        "available": available,
        "low_balance": available < _banner_threshold(wallet),
        "can_create_keys": user_can_create_keys(user=request.user),
        "has_usage": usage_exists(membership=membership),
        "has_key": keys_visible_to(membership=membership)
        .filter(status=ApiKey.Status.ACTIVE)
        .exists(),
        "error": "",
    }
    if not context["has_usage"]:  # the first-run steps instead of empty charts
        return render(request, "logs/overview.html", context)

    zone = timezone.get_current_timezone()
    params = request.GET.dict()
    try:
        span = usage_range_from(params, zone=zone)
        chart = usage_chart(
            membership=membership, span=span, split=params.get("split") or "model", zone=zone
        )
    except FilterError as exc:
        context["error"] = str(exc)
        span = usage_range_from({}, zone=zone)
        chart = usage_chart(membership=membership, span=span, split="model", zone=zone)
    context.update(
        usage=usage_overview(membership=membership),
        chart=chart,
        chart_data=_chart_data(chart, timezone.get_current_timezone_name()),
        ranges=list(USAGE_RANGES),
        rows=_bucket_rows(chart),
    )
    return render(request, "logs/overview.html", context, status=400 if context["error"] else 200)
