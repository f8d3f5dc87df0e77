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

from accounts.access import (
    Capability,
    capability_required,
    organization_for_request,
    role_allows,
)
from accounts.models import ApiKey, Membership
from accounts.selectors import user_can_create_keys
from billing.models import LowBalanceAlert, Wallet
from logs.csv_export import csv_rows
from logs.models import DailyUsage
from logs.selectors import FilterError, filtered_logs, log_filter_from, log_page
from logs.templatetags.usage_format import usd
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


def _bars(points: list[tuple[str, int, str]]) -> list[dict[str, Any]]:
    """Bar heights in percent of the largest value, for the SVG charts."""
    peak = max((value for _, value, _ in points), default=0) or 1
    bars = []
    for i, (label, value, title) in enumerate(points):
        height = round(100 * value / peak, 1)
        bars.append(
            {"label": label, "value": value, "title": title, "x": i * 10 + 0.5,
             "y": round(100 - height, 1), "height": height}
        )  # fmt: skip
    return bars


def _banner_threshold(wallet: Wallet | None) -> int:
    """The organization's own low-balance threshold when it set one, else the default."""
    alert = LowBalanceAlert.objects.filter(wallet=wallet).first() if wallet else None
    return alert.threshold if alert else settings.LOW_BALANCE_BANNER_MICROS


@capability_required(Capability.VIEW_ORG)
def overview(request: HttpRequest) -> HttpResponse:
    membership: Membership = request.membership  # type: ignore[attr-defined]
    usage = usage_overview(membership=membership)
    wallet = Wallet.objects.filter(organization_id=membership.organization_id).first()
    available = (wallet.balance - wallet.held) if wallet else 0
    key_names = dict(
        ApiKey.objects.filter(organization_id=membership.organization_id).values_list("pk", "name")
    )
    context = {
        "section": "overview",
        "usage": usage,
        "balance": wallet.balance if wallet else 0,
        "available": available,
        "low_balance": available < _banner_threshold(wallet),
        "cost_by_day": _bars(
            [
                (d.strftime("%m-%d"), t.cost, f"{d}: {usd(t.cost)}, {t.requests}")
                for d, t in usage.days
            ]
        ),
        "requests_by_hour": _bars(
            [(h.strftime("%H"), t.requests, f"{h:%H:00}: {t.requests}") for h, t in usage.hours]
        ),
        "tokens_by_day": _bars(
            [(d.strftime("%m-%d"), t.tokens, f"{d}: {t.tokens}") for d, t in usage.days]
        ),
        "by_key": [(key_names.get(k, "-") if k else "-", t) for k, t in usage.by_key],
        "can_create_keys": user_can_create_keys(user=request.user),  # type: ignore[arg-type]
    }
    return render(request, "logs/overview.html", context)
