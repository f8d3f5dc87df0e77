"""The billing page of the portal: balance, top-up, redemption, ledger, receipts, alert."""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import cast

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from accounts.access import Capability, capability_required, role_allows
from accounts.models import Membership, Organization, User
from accounts.network import client_ip
from billing.alerts import low_balance_set
from billing.codes import code_redeem
from billing.events import Outcome, payment_event_process, payment_event_record
from billing.exceptions import InvalidTopUp, RedemptionError
from billing.forms import AlertForm, RedeemForm, TopUpForm
from billing.models import TopUp
from billing.money import micros_to_usd
from billing.providers import InvalidCallback, ProviderError, ProviderUnavailable
from billing.providers import demo as demo_provider
from billing.selectors import (
    ledger_first_month,
    ledger_statement,
    low_balance_threshold,
    month_after,
    month_before,
    month_start,
    topups_for_organization,
    wallet_for_organization,
)
from billing.topups import bonus_tiers, topup_create, topup_rate

log = logging.getLogger(__name__)


def _org(request: HttpRequest) -> Organization:
    return cast(Organization, request.organization)  # type: ignore[attr-defined]


def _month(request: HttpRequest) -> dt.date:
    """The statement month asked for (?month=YYYY-MM), this month by default."""
    this_month = month_start(timezone.now().astimezone(dt.UTC).date())
    try:
        asked = dt.datetime.strptime(request.GET.get("month", ""), "%Y-%m").date()  # noqa: DTZ007
    except ValueError:
        return this_month
    return min(asked, this_month)


def _page(request: HttpRequest, **forms: object) -> HttpResponse:
    org = _org(request)
    wallet = wallet_for_organization(organization=org)
    month = _month(request)
    first = ledger_first_month(organization=org)
    this_month = month_start(timezone.now().astimezone(dt.UTC).date())
    threshold = low_balance_threshold(organization=org)
    context = {
        "section": "billing",
        "balance": wallet.balance,  # micro-USD, formatted by the template
        "available": wallet.balance - wallet.held,
        "negative": wallet.balance < 0,
        "currency": settings.TOPUP_CURRENCY,
        "presets": settings.TOPUP_PRESETS_USD,
        "min_usd": settings.TOPUP_MIN_USD,
        "max_usd": settings.TOPUP_MAX_USD,
        "bonus_tiers": sorted(bonus_tiers()),
        "rate": topup_rate(organization=org),
        "lines": ledger_statement(organization=org, month=month),
        "month": month,
        "previous_month": month_before(month) if first is not None and first < month else None,
        "next_month": month_after(month) if month < this_month else None,
        "topups": topups_for_organization(organization=org)[:20],
        "topup_form": forms.get("topup_form") or TopUpForm(),
        "redeem_form": forms.get("redeem_form") or RedeemForm(),
        "alert_form": forms.get("alert_form")
        or AlertForm(
            initial={"threshold_usd": micros_to_usd(threshold) if threshold is not None else ""}
        ),
    }
    return render(request, "billing/page.html", context)


@require_GET
@capability_required(Capability.BILLING)
def billing_page(request: HttpRequest) -> HttpResponse:
    return _page(request)


@require_POST
@capability_required(Capability.BILLING)
def topup_start(request: HttpRequest) -> HttpResponse:
    form = TopUpForm(request.POST)
    if not form.is_valid():
        return _page(request, topup_form=form)
    try:
        topup = topup_create(
            organization=_org(request),
            created_by=cast(User, request.user),
            amount_usd=form.cleaned_data["amount"],
            provider=form.cleaned_data["provider"],
        )
    except (InvalidTopUp, ProviderUnavailable, ProviderError) as exc:
        form.add_error(None, str(exc))
        return _page(request, topup_form=form)
    return HttpResponseRedirect(topup.redirect_url)


@require_POST
@capability_required(Capability.VIEW_ORG)
def redeem(request: HttpRequest) -> HttpResponse:
    form = RedeemForm(request.POST)
    back = reverse("billing")
    if form.is_valid():
        try:
            entry = code_redeem(
                raw_code=form.cleaned_data["code"],
                user=cast(User, request.user),
                organization=_org(request),
                ip=client_ip(
                    request.META.get("REMOTE_ADDR"), request.META.get("HTTP_X_FORWARDED_FOR", "")
                )
                or "unknown",
            )
        except RedemptionError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(
                request,
                _("%(amount)s USD added to your balance.")
                % {"amount": micros_to_usd(entry.amount)},
            )
    membership = cast(Membership, request.membership)  # type: ignore[attr-defined]
    if not role_allows(membership.role, Capability.BILLING):
        back = "/dashboard/"  # members without billing rights cannot see the billing page
    return HttpResponseRedirect(back)


@require_POST
@capability_required(Capability.BILLING)
def alert_set(request: HttpRequest) -> HttpResponse:
    form = AlertForm(request.POST)
    if not form.is_valid():
        return _page(request, alert_form=form)
    low_balance_set(organization=_org(request), threshold=form.cleaned_data["threshold_usd"])
    messages.success(request, _("Low-balance alert saved."))
    return HttpResponseRedirect(reverse("billing"))


@require_GET
@capability_required(Capability.BILLING)
def receipt(request: HttpRequest, pk: int) -> HttpResponse:
    """A printable receipt for a paid top-up of the active organization."""
    topup = get_object_or_404(TopUp, pk=pk, organization=_org(request))
    if topup.state != TopUp.State.PAID:
        raise Http404("no receipt for an unpaid top-up")
    context = {
        "topup": topup,
        "credit": micros_to_usd(topup.credit),
        "bonus": micros_to_usd(topup.bonus),
        "paid": f"{topup.pay_amount // 100}.{topup.pay_amount % 100:02d}",
        "organization": _org(request),
    }
    return render(request, "billing/receipt.html", context)


def _demo_topup(request: HttpRequest, ref: str) -> TopUp:
    """The active organization's demo top-up REF; 404 when demo payments are off."""
    if not demo_provider.DemoProvider().configured():
        raise Http404("demo payments are off")
    return get_object_or_404(
        TopUp, provider=demo_provider.NAME, provider_ref=ref, organization=_org(request)
    )


@require_GET
@capability_required(Capability.BILLING)
def demo_checkout(request: HttpRequest, ref: str) -> HttpResponse:
    """The demo provider's checkout page: Pay or Cancel, each a signed event."""
    topup = _demo_topup(request, ref)
    context = {
        "topup": topup,
        "charge": f"{topup.pay_amount // 100}.{topup.pay_amount % 100:02d}",
        "pay": demo_provider.event_for(topup, demo_provider.PAID),
        "cancel": demo_provider.event_for(topup, demo_provider.CANCELED),
    }
    return render(request, "billing/demo_checkout.html", context)


@require_POST
@capability_required(Capability.BILLING)
def demo_event(request: HttpRequest, ref: str) -> HttpResponse:
    """The demo provider's callback: verified, stored once like a webhook, then applied."""
    topup = _demo_topup(request, ref)
    try:
        data = demo_provider.callback_verify(request.POST)
    except InvalidCallback as exc:
        log.warning("demo payment event refused: %s", exc)
        return HttpResponse(str(exc), status=400, content_type="text/plain")
    if data["ref"] != topup.provider_ref:
        return HttpResponse("event for another top-up", status=400, content_type="text/plain")
    event, _ = payment_event_record(
        provider=demo_provider.NAME,
        event_id=f"{data['ref']}:{data['outcome']}",
        event_type=data["outcome"],
        payload=json.dumps(data, sort_keys=True),
        enqueue=False,
    )
    if payment_event_process(event_pk=event.pk) == Outcome.REJECTED:
        return HttpResponse("payment event rejected", status=400, content_type="text/plain")
    back = f"{reverse('billing-return')}?provider=demo&topup={topup.pk}"
    if data["outcome"] == demo_provider.CANCELED:
        back += "&canceled=1"
    return HttpResponseRedirect(back)
