"""The billing page of the portal: plan, balance, top-up, redemption, ledger, receipts,
alert; the plan's actions and the demo provider's checkout pages."""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from accounts.access import Capability, capability_required, role_allows
from accounts.http import PortalRequest
from accounts.models import Organization
from accounts.network import client_ip
from billing.alerts import low_balance_set
from billing.codes import code_redeem
from billing.credit_note_views import credit_note_facts, minor_text, rate_text
from billing.credit_notes import credit_notes_for_organization, tax_included
from billing.documents import billed_to_details, issuer_details, party_lines
from billing.events import Outcome, payment_event_process, payment_event_record
from billing.exceptions import InvalidTopUp, RedemptionError
from billing.forms import (
    PROVIDER_LABELS,
    AlertForm,
    PlanChangeForm,
    PlanSubscribeForm,
    RedeemForm,
    TopUpForm,
)
from billing.invoice_views import invoice_facts
from billing.invoices import invoices_for_organization
from billing.models import Plan, Subscription, TopUp
from billing.plans import WINDOWS, subscription_current
from billing.providers import (
    InvalidCallback,
    ProviderError,
    ProviderUnavailable,
    plan_sellers_configured,
)
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
from billing.statements import statements_for_organization
from billing.subscriptions import (
    DEMO,
    SubscriptionError,
    price_from_minor,
    subscription_cancel,
    subscription_change_plan,
    subscription_checkout,
    subscription_resume,
)
from billing.topups import bonus_tiers, topup_create, topup_rate
from billing.windows import CapUse, plan_windows
from money import micros_to_usd

log = logging.getLogger(__name__)


def _month(request: PortalRequest) -> dt.date:
    """The statement month asked for (?month=YYYY-MM), this month by default."""
    this_month = month_start(timezone.now().astimezone(dt.UTC).date())
    try:
        asked = dt.datetime.strptime(request.GET.get("month", ""), "%Y-%m").date()  # noqa: DTZ007
    except ValueError:
        return this_month
    return min(asked, this_month)


# --- Plans ------------------------------------------------------------------------------


def _window_labels() -> dict[str, str]:
    # By the window's bucket span (billing/plans.py WINDOWS).
    return {"m": _("5-hour window"), "h": _("Weekly window"), "M": _("Monthly quota")}


@dataclass(frozen=True, slots=True)
class WindowRow:
    """One plan window as the page draws it."""

    label: str
    usd: bool
    used: int
    in_flight: int
    limit: int
    used_percent: int  # of the bar, 0-100
    flight_percent: int  # drawn after the used part; together at most 100
    frees_at: dt.datetime | None
    calendar: bool  # the monthly quota resets; rolling windows free up bit by bit

    @property
    def full(self) -> bool:
        return self.used + self.in_flight >= self.limit


def _window_row(use: CapUse) -> WindowRow:
    limit = max(1, use.limit)
    used = min(100, use.used * 100 // limit)
    flight = min(100 - used, -(-use.in_flight * 100 // limit))
    return WindowRow(
        label=_window_labels().get(use.cap.span, use.cap.label),
        usd=use.cap.unit == Plan.Unit.USD,
        used=use.used,
        in_flight=use.in_flight,
        limit=use.limit,
        used_percent=used,
        flight_percent=flight,
        frees_at=use.frees_at if use.used else None,
        calendar=use.cap.span == "M",
    )


@dataclass(frozen=True, slots=True)
class PlanOffer:
    """A plan as the page offers it: price and quotas, ready to show."""

    plan: Plan
    price: str
    quotas: list[tuple[str, int, bool]]  # (window label, limit, in USD)


def plan_price(plan: Plan) -> str:
    amount = price_from_minor(plan.price, plan.currency)
    if plan.currency.lower() == "usd":
        return f"${amount:,}"
    return f"{amount:,} {plan.currency.upper()}"


def _offer(plan: Plan) -> PlanOffer:
    labels = _window_labels()
    quotas = [
        (labels[span], getattr(plan, limit), getattr(plan, unit) == Plan.Unit.USD)
        for _label, span, _seconds, limit, unit in WINDOWS
        if getattr(plan, limit) is not None
    ]
    return PlanOffer(plan=plan, price=plan_price(plan), quotas=quotas)


def _plans_context(org: Organization) -> dict[str, object]:
    now = timezone.now()
    subscription = subscription_current(organization_id=org.pk, now=now)
    plans = [_offer(p) for p in Plan.objects.filter(active=True).select_related("pricing_group")]
    sellers = [(name, PROVIDER_LABELS.get(name, name)) for name in plan_sellers_configured()]
    context: dict[str, object] = {
        "subscription": subscription,
        "plans": plans,
        "plan_sellers": sellers,
        "plan_fallback": org.plan_fallback,
    }
    if subscription is not None:
        context |= {
            "current_offer": _offer(subscription.plan),
            "windows": [_window_row(u) for u in plan_windows(subscription=subscription, now=now)],
            "renews": subscription.provider in (Subscription.Provider.STRIPE, DEMO),
            "can_change": subscription.provider in (Subscription.Provider.STRIPE, DEMO),
            "other_plans": [o for o in plans if o.plan.pk != subscription.plan_id],
            # A plan granted for a fixed time can be followed by a paid one.
            "offer_plans": subscription.provider
            in (Subscription.Provider.CODE, Subscription.Provider.ADMIN),
        }
    else:
        context["offer_plans"] = True
    return context


def _page(request: PortalRequest, **forms: object) -> HttpResponse:
    org = request.organization
    wallet = wallet_for_organization(organization=org)
    month = _month(request)
    first = ledger_first_month(organization=org)
    this_month = month_start(timezone.now().astimezone(dt.UTC).date())
    threshold = low_balance_threshold(organization=org)
    context = {
        "section": "billing",
        "balance": wallet.balance,  # micro-USD, formatted by the template
        "available": wallet.available,
        "credit_limit": wallet.credit_limit,
        "negative": wallet.balance < -wallet.credit_limit,  # below the floor
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
        "statements": statements_for_organization(organization=org)[:24],
        "invoices": [invoice_facts(i) for i in invoices_for_organization(organization=org)[:24]],
        "credit_notes": [
            credit_note_facts(n) for n in credit_notes_for_organization(organization=org)[:20]
        ],
        "topup_form": forms.get("topup_form") or TopUpForm(),
        "redeem_form": forms.get("redeem_form") or RedeemForm(),
        "alert_form": forms.get("alert_form")
        or AlertForm(
            initial={"threshold_usd": micros_to_usd(threshold) if threshold is not None else ""}
        ),
        **_plans_context(org),
    }
    return render(request, "billing/page.html", context)


@require_GET
@capability_required(Capability.BILLING)
def billing_page(request: PortalRequest) -> HttpResponse:
    return _page(request)


@require_POST
@capability_required(Capability.BILLING)
def topup_start(request: PortalRequest) -> HttpResponse:
    form = TopUpForm(request.POST)
    if not form.is_valid():
        return _page(request, topup_form=form)
    try:
        topup = topup_create(
            organization=request.organization,
            created_by=request.user,
            amount_usd=form.cleaned_data["amount"],
            provider=form.cleaned_data["provider"],
        )
    except (InvalidTopUp, ProviderUnavailable, ProviderError) as exc:
        form.add_error(None, str(exc))
        return _page(request, topup_form=form)
    return HttpResponseRedirect(topup.redirect_url)


def _back_to_plans() -> HttpResponseRedirect:
    return HttpResponseRedirect(reverse("billing") + "#plans")


@require_POST
@capability_required(Capability.BILLING)
def plan_subscribe(request: PortalRequest) -> HttpResponse:
    """Send the customer to pay for a plan; it starts when the provider confirms."""
    form = PlanSubscribeForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Choose a plan and how to pay."))
        return _back_to_plans()
    try:
        checkout = subscription_checkout(
            organization=request.organization,
            plan=form.cleaned_data["plan"],
            provider=form.cleaned_data["provider"],
            user=request.user,
        )
    except (SubscriptionError, ProviderUnavailable, ProviderError) as exc:
        messages.error(request, str(exc))
        return _back_to_plans()
    return HttpResponseRedirect(checkout.url)


def _current(request: PortalRequest) -> Subscription | None:
    subscription = subscription_current(organization_id=request.organization.pk)
    if subscription is None:
        messages.error(request, _("Your organization has no plan."))
    return subscription


@require_POST
@capability_required(Capability.BILLING)
def plan_cancel(request: PortalRequest) -> HttpResponse:
    """Cancel at the end of the paid period."""
    subscription = _current(request)
    if subscription is not None:
        try:
            subscription_cancel(subscription=subscription, actor=request.user)
        except (SubscriptionError, ProviderError) as exc:
            messages.error(request, str(exc))
        else:
            messages.success(
                request,
                _("Your plan will not renew. It works until the end of the period."),
            )
    return _back_to_plans()


@require_POST
@capability_required(Capability.BILLING)
def plan_resume(request: PortalRequest) -> HttpResponse:
    subscription = _current(request)
    if subscription is not None:
        try:
            subscription_resume(subscription=subscription, actor=request.user)
        except (SubscriptionError, ProviderError) as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, _("Your plan renews again."))
    return _back_to_plans()


@require_POST
@capability_required(Capability.BILLING)
def plan_change(request: PortalRequest) -> HttpResponse:
    subscription = _current(request)
    form = PlanChangeForm(request.POST)
    if subscription is None:
        return _back_to_plans()
    if not form.is_valid():
        messages.error(request, _("Choose a plan."))
        return _back_to_plans()
    plan = form.cleaned_data["plan"]
    try:
        done = subscription_change_plan(subscription=subscription, plan=plan, actor=request.user)
    except (SubscriptionError, ProviderError) as exc:
        messages.error(request, str(exc))
    else:
        if done:
            messages.success(request, _("Your plan is now %(plan)s.") % {"plan": plan.name})
        else:
            messages.success(
                request,
                _(
                    "Changing to %(plan)s: the difference for the rest of the period is "
                    "charged now, and the plan changes as soon as Stripe confirms the payment."
                )
                % {"plan": plan.name},
            )
    return _back_to_plans()


@require_POST
@capability_required(Capability.VIEW_ORG)
def redeem(request: PortalRequest) -> HttpResponse:
    form = RedeemForm(request.POST)
    back = reverse("billing")
    if form.is_valid():
        try:
            redemption = code_redeem(
                raw_code=form.cleaned_data["code"],
                user=request.user,
                organization=request.organization,
                ip=client_ip(
                    request.META.get("REMOTE_ADDR"), request.META.get("HTTP_X_FORWARDED_FOR", "")
                )
                or "unknown",
            )
        except RedemptionError as exc:
            messages.error(request, str(exc))
        else:
            if redemption.subscription is not None:
                messages.success(
                    request,
                    _("The %(plan)s plan is yours until %(end)s.")
                    % {
                        "plan": redemption.subscription.plan.name,
                        "end": timezone.localtime(
                            redemption.subscription.current_period_end
                        ).strftime("%Y-%m-%d %H:%M"),
                    },
                )
            if redemption.amount:
                messages.success(
                    request,
                    _("%(amount)s USD added to your balance.")
                    % {"amount": micros_to_usd(redemption.amount)},
                )
    membership = request.membership
    if not role_allows(membership.role, Capability.BILLING):
        back = reverse("dashboard")  # members without billing rights cannot see the billing page
    return HttpResponseRedirect(back)


@require_POST
@capability_required(Capability.BILLING)
def alert_set(request: PortalRequest) -> HttpResponse:
    form = AlertForm(request.POST)
    if not form.is_valid():
        return _page(request, alert_form=form)
    low_balance_set(organization=request.organization, threshold=form.cleaned_data["threshold_usd"])
    messages.success(request, _("Low-balance alert saved."))
    return HttpResponseRedirect(reverse("billing"))


@require_GET
@capability_required(Capability.BILLING)
def receipt(request: PortalRequest, pk: int) -> HttpResponse:
    """A printable receipt for a paid top-up of the active organization."""
    topup = get_object_or_404(TopUp, pk=pk, organization=request.organization)
    if topup.state != TopUp.State.PAID:
        raise Http404("no receipt for an unpaid top-up")
    # Amounts are tax included; the tax part is exact, rounded half up to the minor unit.
    rate = Decimal(settings.OPERATOR_TAX_RATE)
    context = {
        "topup": topup,
        "credit": micros_to_usd(topup.credit),
        "bonus": micros_to_usd(topup.bonus),
        "paid": f"{topup.pay_amount // 100}.{topup.pay_amount % 100:02d}",
        "organization": request.organization,
        "issuer_lines": party_lines(issuer_details()),
        "billed_to_lines": party_lines(billed_to_details(request.organization)),
        "tax_rate": rate_text(rate) if rate > 0 else "",
        "tax": minor_text(tax_included(topup.pay_amount, rate), topup.currency),
    }
    return render(request, "billing/receipt.html", context)


def _demo_topup(request: PortalRequest, ref: str) -> TopUp:
    """The active organization's demo top-up REF; 404 when demo payments are off."""
    if not demo_provider.DemoProvider().configured():
        raise Http404("demo payments are off")
    return get_object_or_404(
        TopUp, provider=demo_provider.NAME, provider_ref=ref, organization=request.organization
    )


@require_GET
@capability_required(Capability.BILLING)
def demo_checkout(request: PortalRequest, ref: str) -> HttpResponse:
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
def demo_event(request: PortalRequest, ref: str) -> HttpResponse:
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


def _demo_plan(request: PortalRequest, ref: str) -> Plan:
    """The plan a demo plan checkout REF of the active organization is for (else 404)."""
    if not demo_provider.DemoProvider().configured():
        raise Http404("demo payments are off")
    ids = demo_provider.plan_ref_parse(ref)
    if ids is None or ids[0] != request.organization.pk:
        raise Http404("no such demo checkout")
    return get_object_or_404(Plan, pk=ids[1])


@require_GET
@capability_required(Capability.BILLING)
def demo_plan_checkout(request: PortalRequest, ref: str) -> HttpResponse:
    """The demo provider's checkout for a plan: Pay starts the subscription."""
    plan = _demo_plan(request, ref)
    context = {
        "plan": plan,
        "offer": _offer(plan),
        "ref": ref,
        "pay": demo_provider.plan_event_for(ref, plan, demo_provider.PAID),
        "cancel": demo_provider.plan_event_for(ref, plan, demo_provider.CANCELED),
    }
    return render(request, "billing/demo_checkout.html", context)


@require_POST
@capability_required(Capability.BILLING)
def demo_plan_event(request: PortalRequest, ref: str) -> HttpResponse:
    """The plan checkout's callback: verified, stored once like a webhook, then applied."""
    _demo_plan(request, ref)
    try:
        data = demo_provider.callback_verify(request.POST)
    except InvalidCallback as exc:
        log.warning("demo plan event refused: %s", exc)
        return HttpResponse(str(exc), status=400, content_type="text/plain")
    if data["ref"] != ref:
        return HttpResponse("event for another checkout", status=400, content_type="text/plain")
    event, _created = payment_event_record(
        provider=demo_provider.NAME,
        event_id=f"{data['ref']}:{data['outcome']}",
        event_type=f"plan {data['outcome']}",
        payload=json.dumps(data, sort_keys=True),
        enqueue=False,
    )
    if payment_event_process(event_pk=event.pk) == Outcome.REJECTED:
        event.refresh_from_db()
        messages.error(request, event.error)
        return _back_to_plans()
    back = f"{reverse('billing-return')}?provider=demo&plan=1"
    if data["outcome"] == demo_provider.CANCELED:
        back += "&canceled=1"
    return HttpResponseRedirect(back)
