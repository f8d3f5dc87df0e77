"""The portal's request logs explorer (`/dashboard/logs/`), HTML or CSV.

It lives in the portal, not in `logs`, because its channel-type filter reads the relay's
channels, and `logs` sits below `relay`."""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.access import (
    Capability,
    organization_for_request,
    role_allows,
)
from accounts.http import portal_request_bind
from accounts.models import ApiKey, Membership
from logs.csv_export import csv_rows
from logs.models import DailyUsage
from logs.selectors import (
    FilterError,
    LogFilter,
    filtered_logs,
    log_filter_from,
    log_page,
)
from relay.models import Channel


def _membership(request: HttpRequest) -> Membership:
    organization, membership = organization_for_request(request)
    if not role_allows(membership.role, Capability.USE_KEYS) and not role_allows(
        membership.role, Capability.VIEW_USAGE
    ):
        raise PermissionDenied(_("your role in this organization does not allow this"))
    portal_request_bind(request, organization=organization, membership=membership)
    return membership


def _log_filter(params: dict[str, str]) -> LogFilter:
    """The filter of the query parameters, its channel type resolved to the relay's channels."""
    f = log_filter_from(params)
    if f.channel_type:
        f.channel_ids = list(
            Channel.objects.filter(type=f.channel_type).values_list("pk", flat=True)
        )
    return f


@login_required
async def logs_explorer(request: HttpRequest) -> HttpResponseBase:
    membership = await sync_to_async(_membership)(request)
    if request.GET.get("format") == "csv":
        try:
            f = await sync_to_async(_log_filter)(request.GET.dict())
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
        f = _log_filter(request.GET.dict())
        logs = filtered_logs(membership=membership, f=f)
        page = log_page(logs=logs, f=f, cursor=request.GET.get("cursor", ""))
        # Each row with its key's label, as pairs the template unpacks.
        context["rows"] = [(row, labels.get(row.api_key_id, "-")) for row in page.rows]
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
