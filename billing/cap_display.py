"""The caps of a key or organization as the portal's pages show them: each with its use
now, worded "12 of 100 today", "$1.20 of $5.00 this week", and when it resets."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django_stubs_ext import StrOrPromise

from accounts.models import ApiKey, Organization
from accounts.services import CAP_FIELDS
from accounts.templatetags.portal_format import money
from billing.caps import CONCURRENT, REQUESTS, USD, key_caps
from billing.windows import CapUse, cap_use

# (unit, span) of a cap → what it limits and how its use reads; %(used)s and %(limit)s
# are counts or money.
_WORDING: dict[tuple[str, str], tuple[StrOrPromise, StrOrPromise]] = {
    (CONCURRENT, ""): (
        gettext_lazy("Requests in flight at once"),
        gettext_lazy("%(used)s of %(limit)s in flight now"),
    ),
    (REQUESTS, "d"): (
        gettext_lazy("Requests per day"),
        gettext_lazy("%(used)s of %(limit)s today"),
    ),
    (USD, "d"): (gettext_lazy("Spend per day"), gettext_lazy("%(used)s of %(limit)s today")),
    (USD, "w"): (
        gettext_lazy("Spend per week"),
        gettext_lazy("%(used)s of %(limit)s this week"),
    ),
    (USD, "M"): (
        gettext_lazy("Spend per month"),
        gettext_lazy("%(used)s of %(limit)s this month"),
    ),
}


def _cap_values(row: ApiKey | Organization) -> dict[str, int | None]:
    return {name: getattr(row, name) for name in CAP_FIELDS}


def key_cap_uses(*, key: ApiKey, now: dt.datetime | None = None) -> list[CapUse]:
    """The key's own caps (not its organization's), each with how much of it is used now:
    the same counting as the hold's admission (billing/windows.py)."""
    caps = key_caps(
        key_id=key.pk, organization_id=key.organization_id, key=_cap_values(key), org={}
    )
    now = now or timezone.now()
    return [cap_use(cap, now=now) for cap in caps]


def organization_cap_uses(
    *, organization: Organization, now: dt.datetime | None = None
) -> list[CapUse]:
    """The organization's caps (across all its keys), each with its use now."""
    # key_caps makes a key's caps from KEY's fields: none given, only the organization's.
    caps = key_caps(
        key_id=0, organization_id=organization.pk, key={}, org=_cap_values(organization)
    )
    now = now or timezone.now()
    return [cap_use(cap, now=now) for cap in caps]


def _count(value: int | None) -> str:
    return f"{value or 0:,}"


@dataclass(frozen=True, slots=True)
class CapRow:
    label: str  # "Spend per week"
    usage: str  # "$1.20 of $5.00 this week"
    in_flight: str  # "" or "$0.30 held by requests in flight"
    resets_at: dt.datetime | None  # when the period starts again (None: concurrency)
    value: int  # for a <meter>: what counts against the cap now, at most the limit
    limit: int


def cap_rows(uses: Iterable[CapUse]) -> list[CapRow]:
    rows = []
    for use in uses:
        cap = use.cap
        label, sentence = _WORDING.get((cap.unit, cap.span), (cap.label, "%(used)s / %(limit)s"))
        shown = money if cap.unit == USD else _count
        # Settled use, and apart from it what requests in flight hold (the admission
        # counts both); for concurrency, the requests in flight are the use.
        used, in_flight = use.used, ""
        if cap.unit == CONCURRENT:
            used = use.in_flight
        elif use.in_flight and cap.unit == USD:
            in_flight = _("%(amount)s held by requests in flight") % {
                "amount": money(use.in_flight)
            }
        elif use.in_flight:
            in_flight = _("%(count)s in flight") % {"count": _count(use.in_flight)}
        rows.append(
            CapRow(
                label=str(label),
                usage=str(sentence) % {"used": shown(used), "limit": shown(cap.limit)},
                in_flight=in_flight,
                resets_at=None if cap.unit == CONCURRENT else use.frees_at,
                value=min(use.used + use.in_flight, cap.limit),
                limit=cap.limit,
            )
        )
    return rows
