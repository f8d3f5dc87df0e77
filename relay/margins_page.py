"""The admin's margins page (`/admin/margins/`, staff): revenue, upstream cost and margin
for a range of UTC days (billing/margins.py), a chart per day, a table per day, model,
channel or organization, and that table as CSV (`?format=csv`). Here rather than in billing
because it names channels (relay)."""

from __future__ import annotations

import dataclasses
from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from accounts.models import Organization
from billing.margins import (
    GROUPS,
    GroupKey,
    MarginQueryError,
    MarginReport,
    margin_csv,
    margin_query_from,
    margin_report,
)
from relay.models import Channel


def margins_page(request: HttpRequest) -> HttpResponse:
    """Staff only: wrapped by the admin site's admin_view."""
    error = ""
    try:
        query = margin_query_from(request.GET.dict())
    except MarginQueryError as exc:
        error = str(exc)
        query = margin_query_from({})
    report = margin_report(query=query)
    labels = margin_labels(report)
    if request.GET.get("format") == "csv" and not error:
        # The table is already in memory (a row per day of at most a year, or per model,
        # channel or organization): nothing to gain from streaming it out of the database.
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        return HttpResponse(
            b"".join(margin_csv(report, labels=labels)),
            content_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="tokenhub-margins-{stamp}.csv"'},
        )
    daily = report
    if query.group != "day":
        daily = margin_report(query=dataclasses.replace(query, group="day"))
    context = {
        **admin.site.each_context(request),
        "title": "Margins",
        "error": error,
        "query": query,
        "groups": GROUPS,
        "report": report,
        "rows": [(row, labels.get(row.key, str(row.key))) for row in report.rows],
        "chart": margin_chart(daily),
        "csv_query": request.GET.urlencode(),
    }
    return TemplateResponse(request, "admin/margins.html", context, status=400 if error else 200)


def margin_labels(report: MarginReport) -> dict[GroupKey, str]:
    """What each row of REPORT is called on the page and in the CSV."""
    keys = [row.key for row in report.rows]
    group = report.query.group
    if group == "channel":
        channels: dict[GroupKey, str] = dict(
            Channel.objects.filter(pk__in=[k for k in keys if k]).values_list("pk", "name")
        )
        return {k: channels.get(k, f"#{k} (deleted)") if k else "(no channel)" for k in keys}
    if group == "organization":
        orgs: dict[GroupKey, str] = dict(
            Organization.objects.filter(pk__in=keys).values_list("pk", "name")
        )
        return {k: orgs.get(k, f"#{k} (deleted)") for k in keys}
    if group == "model":
        return {k: str(k) or "(no model)" for k in keys}
    return {k: str(k) for k in keys}


def margin_chart(daily: MarginReport) -> dict[str, Any]:
    """The chart's figures per day, micro-USD (static/js/margins.js draws them)."""
    return {
        "days": [str(row.key) for row in daily.rows],
        "revenue": [row.revenue for row in daily.rows],
        "upstream": [row.upstream_cost for row in daily.rows],
        "margin": [row.margin for row in daily.rows],
        "uncosted": [row.uncosted for row in daily.rows],
    }
