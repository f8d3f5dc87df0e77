"""The dashboard's request logs explorer (`/dashboard/logs/`), HTML or CSV."""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import pgettext

from accounts.access import (
    Capability,
    capability_required,
    organization_for_request,
    role_allows,
)
from accounts.models import ApiKey, Membership
from accounts.selectors import keys_visible_to, user_can_create_keys
from billing.models import LowBalanceAlert, Wallet
from logs.csv_export import csv_rows
from logs.models import DailyUsage
from logs.selectors import (
    USAGE_RANGES,
    FilterError,
    UsageChart,
    UsageSeries,
    filtered_logs,
    log_filter_from,
    log_page,
    usage_chart,
    usage_exists,
    usage_range_from,
)
from logs.usage import usage_overview
from relay.models import Channel


def _membership(request: HttpRequest) -> Membership:
    organization, membership = organization_for_request(request)
    if not role_allows(membership.role, Capability.USE_KEYS) and not role_allows(
        membership.role, Capability.VIEW_USAGE
    ):
        raise PermissionDenied(_("your role in this organization does not allow this"))
    request.organization = organization  # type: ignore[attr-defined]
    return membership


@login_required
async def logs_explorer(request: HttpRequest) -> HttpResponseBase:
    membership = await sync_to_async(_membership)(request)
    if request.GET.get("format") == "csv":
        try:
            f = log_filter_from(request.GET.dict())
        except FilterError as exc:
            return HttpResponse(str(exc), status=400, content_type="text/plain; charset=utf-8")
        logs = filtered_logs(membership=membership, f=f)
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        return StreamingHttpResponse(
            csv_rows(logs),
            content_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="tokenhub-logs-{stamp}.csv"'},
        )
    return await sync_to_async(_page)(request, membership)


def _page(request: HttpRequest, membership: Membership) -> HttpResponse:
    keys = ApiKey.objects.filter(organization_id=membership.organization_id)
    if not role_allows(membership.role, Capability.VIEW_USAGE):
        keys = keys.filter(created_by_id=membership.user_id)
    keys_listed = list(keys.order_by("name").values("pk", "name", "prefix"))
    labels: dict[int | None, str] = {k["pk"]: k["name"] or k["prefix"] for k in keys_listed}
    context: dict[str, Any] = {
        "section": "logs",
        "params": request.GET,
        "filtered": any(
            request.GET.get(name)
            for name in ("since", "until", "model", "key", "status", "channel_type", "min_cost")
        ),
        "keys": keys_listed,
        # From the rollup, not a scan of the logs: fast however many rows there are.
        "models": list(
            DailyUsage.objects.filter(organization_id=membership.organization_id)
            .order_by("model")
            .values_list("model", flat=True)
            .distinct()[:200]
        ),
        "channel_types": Channel.Type.choices,
        "page": None,
        "error": "",
    }
    try:
        f = log_filter_from(request.GET.dict())
        logs = filtered_logs(membership=membership, f=f)
        page = log_page(logs=logs, f=f, cursor=request.GET.get("cursor", ""))
        for row in page.rows:
            row.key_label = labels.get(row.api_key_id, "-")  # type: ignore[attr-defined]
        sort = ("-" if f.descending else "") + f.sort
        context.update(
            page=page,
            sort=sort,
            # Each column's link: descending first, ascending when already descending.
            toggles={n: n if sort == f"-{n}" else f"-{n}" for n in ("time", "cost", "latency")},
        )
    except FilterError as exc:
        context["error"] = str(exc)
    status = 400 if context["error"] else 200
    return render(request, "logs/explorer.html", context, status=status)


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
def overview(request: HttpRequest) -> HttpResponse:
    membership: Membership = request.membership  # type: ignore[attr-defined]
    wallet = Wallet.objects.filter(organization_id=membership.organization_id).first()
    available = wallet.available if wallet else 0
    context: dict[str, Any] = {
        "section": "overview",
        "params": request.GET,
        "balance": wallet.balance if wallet else 0,
        "available": available,
        "low_balance": available < _banner_threshold(wallet),
        "can_create_keys": user_can_create_keys(user=request.user),  # type: ignore[arg-type]
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
