"""Subscriptions: an organization's plan from its start (a paid checkout, a code, a staff
grant) to its end, and the emails about its monthly quota.

Each transition is one atomic function that changes nothing when repeated or when it
arrives late, since provider events come twice and out of order: a period never moves
backwards, and an ended subscription does not come back unless its provider confirms it
was paid for. Every transition locks the organization's row first, then the subscription's.
The request path reads subscriptions through billing/plans.py; Stripe's events are
translated into these calls by billing/provider_events/stripe_subscriptions.py.
"""

from __future__ import annotations

import calendar
import datetime as dt
import logging
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from typing import Any

from celery import shared_task
from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.audit import audit_record
from accounts.models import Membership, Organization, User
from billing.caps import next_start
from billing.exceptions import BillingError
from billing.models import Plan, Subscription
from billing.plan_payments import plan_payment_record
from billing.plans import covers, plan_caps
from billing.providers import Checkout, plan_seller_get
from billing.providers import stripe as stripe_api
from billing.windows import CapUse, cap_use

log = logging.getLogger(__name__)

Status = Subscription.Status
Provider = Subscription.Provider
CURRENT = (Status.ACTIVE, Status.PAST_DUE)
# The demo provider's subscriptions (PAYMENTS_DEMO): bought and renewed with no money.
DEMO = Provider.DEMO
# Subscriptions somebody paid for and that renew: never replaced without a refund.
PAID = (Provider.STRIPE,)
# The monthly-quota email levels, percent of the quota.
ALERT_LEVELS = (100, 80)
AUDIT_KIND = "subscription_changed"


class SubscriptionError(BillingError):
    """A subscription change that cannot be made; the message is shown to the customer."""


class SubscriptionConflict(SubscriptionError):
    """A paid subscription would start while another paid one is current."""


# --- Periods -----------------------------------------------------------------------------


def period_end_after(start: dt.datetime, interval: str) -> dt.datetime:
    """One INTERVAL (Plan.Interval) after START: the same day of the next month or year,
    or the last day of a shorter month (Jan 31 -> Feb 28)."""
    months = 12 if interval == Plan.Interval.YEAR else 1
    index = start.month - 1 + months
    year, month = start.year + index // 12, index % 12 + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return start.replace(year=year, month=month, day=day)


# Currencies without a minor unit (Stripe's list): the price is stored as is.
ZERO_DECIMAL = frozenset(("bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga",
                          "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf"))  # fmt: skip


def price_to_minor(amount: Decimal, currency: str) -> int:
    """A plan's price entered in the currency's unit (20.00) as stored (2000)."""
    places = 0 if currency.lower() in ZERO_DECIMAL else 2
    minor = amount.scaleb(places)
    if minor != minor.to_integral_value():
        raise ValueError(f"{currency.upper()} has {places} decimals")
    return int(minor)


def price_from_minor(amount: int, currency: str) -> Decimal:
    places = 0 if currency.lower() in ZERO_DECIMAL else 2
    return Decimal(amount).scaleb(-places)


def grace_period() -> dt.timedelta:
    return dt.timedelta(days=settings.SUBSCRIPTION_GRACE_DAYS)


def subscription_covers(subscription: Subscription, now: dt.datetime) -> bool:
    """Whether SUBSCRIPTION funds requests at NOW (as billing.plans.subscription_current)."""
    return covers(subscription, now)


# --- Internals ---------------------------------------------------------------------------


def _audit(
    subscription: Subscription, action: str, *, actor: User | None = None, **meta: Any
) -> None:
    audit_record(
        kind=AUDIT_KIND,
        organization=subscription.organization,
        actor=actor,
        subscription=subscription.pk,
        action=action,
        plan=subscription.plan.slug,
        provider=subscription.provider,
        status=subscription.status,
        **meta,
    )


def _lock_organization(organization_id: int) -> None:
    # One lock serialises every transition of an organization's subscriptions, so the
    # check "which one is current" and the write after it cannot interleave.
    Organization.objects.select_for_update().filter(pk=organization_id).first()


def _current_locked(organization_id: int, *, exclude: int | None = None) -> Subscription | None:
    rows = Subscription.objects.select_for_update().filter(
        organization_id=organization_id, status__in=CURRENT
    )
    if exclude is not None:
        rows = rows.exclude(pk=exclude)
    return rows.select_related("plan", "organization").first()


def _locked(provider: str, provider_ref: str) -> Subscription | None:
    """The subscription PROVIDER knows as PROVIDER_REF, locked (organization first).
    Call inside a transaction."""
    org_id = (
        Subscription.objects.filter(provider=provider, provider_ref=provider_ref)
        .values_list("organization_id", flat=True)
        .first()
    )
    if org_id is None or not provider_ref:
        return None
    _lock_organization(org_id)
    return (
        Subscription.objects.select_for_update()
        .select_related("plan", "organization")
        .filter(provider=provider, provider_ref=provider_ref)
        .first()
    )


def _locked_pk(pk: int) -> Subscription:
    org_id = Subscription.objects.values_list("organization_id", flat=True).get(pk=pk)
    _lock_organization(org_id)
    return (
        Subscription.objects.select_for_update().select_related("plan", "organization").get(pk=pk)
    )


def _end(subscription: Subscription, status: str, reason: str, actor: User | None = None) -> None:
    subscription.status = status
    subscription.cancel_at_period_end = False
    subscription.save(update_fields=["status", "cancel_at_period_end", "updated_at"])
    _audit(subscription, "ended", actor=actor, reason=reason)


def _make_room(
    organization_id: int, *, now: dt.datetime, paid: bool, exclude: int | None = None
) -> None:
    """Clear the way for a new current subscription: a lapsed one expires, an unpaid one
    (code, staff grant, demo) is replaced by a paid one; another paid one refuses."""
    current = _current_locked(organization_id, exclude=exclude)
    if current is None:
        return
    if not subscription_covers(current, now):
        _end(current, Status.EXPIRED, "lapsed")
    elif current.provider in PAID:
        raise SubscriptionConflict(
            f"organization {organization_id} already pays for subscription {current.pk} "
            f"({current.provider} {current.provider_ref}); refund and cancel one of them"
        )
    elif paid:
        _end(current, Status.CANCELED, "replaced by a paid subscription")
    else:
        raise SubscriptionError(
            _("Your organization already has the %(plan)s plan.") % {"plan": current.plan.name}
        )


# --- Buying -------------------------------------------------------------------------------


def subscription_checkout(
    *, organization: Organization, plan: Plan, provider: str, user: User
) -> Checkout:
    """Where USER pays for PLAN (PROVIDER: stripe, demo). Nothing changes here: the
    subscription starts when the provider confirms the payment. Raises SubscriptionError
    (a paid plan is current: change it instead; the plan is not offered) or
    ProviderUnavailable / ProviderError."""
    if not plan.active:
        raise SubscriptionError(_("This plan is not offered any more."))
    current = Subscription.objects.filter(organization=organization, status__in=CURRENT).first()
    if (
        current is not None
        and current.provider in PAID
        and subscription_covers(current, timezone.now())
    ):
        raise SubscriptionError(
            _("Your organization has a plan already: change it instead of subscribing again.")
        )
    return plan_seller_get(provider).plan_checkout(
        organization=organization, plan=plan, email=user.email
    )


# --- Transitions -------------------------------------------------------------------------


def subscription_start(
    *,
    organization: Organization,
    plan: Plan,
    provider: str,
    period_start: dt.datetime,
    period_end: dt.datetime,
    provider_ref: str = "",
    actor: User | None = None,
    now: dt.datetime | None = None,
) -> Subscription:
    """Start ORGANIZATION's subscription to PLAN for the period given. Atomic.

    Idempotent per (PROVIDER, PROVIDER_REF): a repeat returns the existing row, even an
    ended one (never brought back here). A current subscription that no longer covers
    expires first; an unpaid one (code, grant, demo) gives way to a paid one. Raises
    SubscriptionConflict when another paid subscription is current, SubscriptionError
    when an unpaid one would replace a current subscription.
    """
    now = now or timezone.now()
    with transaction.atomic():
        _lock_organization(organization.pk)
        if provider_ref:
            existing = (
                Subscription.objects.select_for_update()
                .filter(provider=provider, provider_ref=provider_ref)
                .first()
            )
            if existing is not None:
                return existing
        _make_room(organization.pk, now=now, paid=provider in PAID or provider == DEMO)
        subscription = Subscription.objects.create(
            organization=organization,
            plan=plan,
            provider=provider,
            provider_ref=provider_ref,
            current_period_start=period_start,
            current_period_end=period_end,
        )
        _audit(subscription, "started", actor=actor, period_end=period_end.isoformat())
    return subscription


def subscription_grant(
    *,
    organization: Organization,
    plan: Plan,
    days: int,
    provider: str,
    actor: User | None = None,
    now: dt.datetime | None = None,
) -> Subscription:
    """Give PLAN to ORGANIZATION for DAYS days without payment (PROVIDER: code, admin).
    Atomic. Extends the current subscription when it is an unpaid one to the same plan,
    else starts one. Raises SubscriptionError when a paid subscription or another plan is
    current: granting over it would take away what the organization has."""
    if days < 1:
        raise ValueError("a grant is at least one day")
    now = now or timezone.now()
    with transaction.atomic():
        _lock_organization(organization.pk)
        current = _current_locked(organization.pk)
        if current is not None and subscription_covers(current, now):
            if current.provider in PAID:
                raise SubscriptionError(
                    _(
                        "Your organization pays for the %(plan)s plan already; this code can "
                        "be redeemed once that subscription has ended."
                    )
                    % {"plan": current.plan.name}
                )
            if current.plan_id != plan.pk:
                raise SubscriptionError(
                    _(
                        "Your organization has the %(current)s plan until %(end)s; this code "
                        "grants %(plan)s. Redeem it once the current plan has ended."
                    )
                    % {
                        "current": current.plan.name,
                        "end": timezone.localtime(current.current_period_end).strftime("%Y-%m-%d"),
                        "plan": plan.name,
                    }
                )
            current.current_period_end = max(current.current_period_end, now) + dt.timedelta(
                days=days
            )
            current.save(update_fields=["current_period_end", "updated_at"])
            _audit(
                current,
                "extended",
                actor=actor,
                days=days,
                by=provider,
                period_end=current.current_period_end.isoformat(),
            )
            return current
        return subscription_start(
            organization=organization,
            plan=plan,
            provider=provider,
            period_start=now,
            period_end=now + dt.timedelta(days=days),
            actor=actor,
            now=now,
        )


def subscription_renew(
    *,
    provider: str,
    provider_ref: str,
    period_start: dt.datetime,
    period_end: dt.datetime,
    reactivate: bool = False,
    now: dt.datetime | None = None,
) -> bool:
    """A newer period was paid for (Stripe: invoice.paid): the period moves on, a past-due
    subscription is active again. Atomic; True when something changed.

    A period not newer than the current one (a replay, or an old invoice arriving after a
    newer one) changes nothing, nor does a canceled subscription. An expired one comes back
    only with REACTIVATE, which the caller sets when the provider confirms that the
    subscription is still active (a renewal paid after our grace had run out)."""
    now = now or timezone.now()
    with transaction.atomic():
        subscription = _locked(provider, provider_ref)
        if subscription is None or period_end <= subscription.current_period_end:
            return False
        if subscription.status == Status.CANCELED:
            return False
        action = "renewed"
        if subscription.status == Status.EXPIRED:
            if not reactivate:
                return False
            try:
                _make_room(
                    subscription.organization_id, now=now, paid=True, exclude=subscription.pk
                )
            except SubscriptionConflict:
                log.error("paid renewal of %s cannot resume: another is paid for", subscription)
                raise
            action = "reactivated"
        subscription.status = Status.ACTIVE
        subscription.grace_until = None
        subscription.current_period_start = period_start
        subscription.current_period_end = period_end
        subscription.save(
            update_fields=[
                "status",
                "grace_until",
                "current_period_start",
                "current_period_end",
                "updated_at",
            ]
        )
        _audit(subscription, action, period_end=period_end.isoformat())
    return True


def subscription_fail(
    *,
    provider: str,
    provider_ref: str,
    period_end: dt.datetime | None,
    now: dt.datetime | None = None,
) -> bool:
    """A renewal payment failed (Stripe: invoice.payment_failed): past due, still covered
    until now + SUBSCRIPTION_GRACE_DAYS. Atomic; True when something changed.

    PERIOD_END is the failed invoice's; a failure for a period already paid (a retry that
    failed before one that succeeded, delivered late) changes nothing, nor does a second
    failure (the first one's grace stands) or one of an ended subscription."""
    now = now or timezone.now()
    with transaction.atomic():
        subscription = _locked(provider, provider_ref)
        if subscription is None or subscription.status != Status.ACTIVE:
            return False
        if period_end is not None and period_end <= subscription.current_period_end:
            return False
        subscription.status = Status.PAST_DUE
        subscription.grace_until = now + grace_period()
        subscription.save(update_fields=["status", "grace_until", "updated_at"])
        _audit(subscription, "payment_failed", grace_until=subscription.grace_until.isoformat())
    return True


def _cancel_flag_set(subscription_id: int, cancel: bool, actor: User | None) -> Subscription:
    with transaction.atomic():
        subscription = _locked_pk(subscription_id)
        if subscription.status in CURRENT and subscription.cancel_at_period_end != cancel:
            subscription.cancel_at_period_end = cancel
            subscription.save(update_fields=["cancel_at_period_end", "updated_at"])
            _audit(subscription, "cancel_at_period_end" if cancel else "resumed", actor=actor)
    return subscription


def subscription_cancel_flag_apply(*, provider: str, provider_ref: str, cancel: bool) -> bool:
    """The provider reports whether the subscription ends at the period's end. Atomic."""
    with transaction.atomic():
        subscription = _locked(provider, provider_ref)
        if subscription is None or subscription.cancel_at_period_end == cancel:
            return False
        _cancel_flag_set(subscription.pk, cancel, None)
    return True


def _customer_changeable(subscription: Subscription) -> None:
    if subscription.status not in CURRENT:
        raise SubscriptionError(_("This subscription has ended."))
    if subscription.provider not in (Provider.STRIPE, DEMO):
        raise SubscriptionError(
            _("This plan was granted for a fixed time; it ends on its own and cannot be changed.")
        )


def subscription_cancel(
    *, subscription: Subscription, actor: User | None = None, at_period_end: bool = True
) -> Subscription:
    """End SUBSCRIPTION. AT_PERIOD_END (the customer's choice): it runs to the end of the
    paid period, then ends without renewal (at Stripe too). Otherwise (staff): it ends now,
    and a Stripe subscription is canceled there (no refund: Stripe's dashboard does those).
    Idempotent. Raises SubscriptionError, or ProviderError when Stripe refuses."""
    if not at_period_end:
        if subscription.status not in CURRENT:
            return subscription
        if subscription.provider == Provider.STRIPE:
            stripe_api.subscription_cancel_now(subscription.provider_ref)
        with transaction.atomic():
            locked = _locked_pk(subscription.pk)
            if locked.status in CURRENT:
                _end(locked, Status.CANCELED, "canceled", actor)
        return locked
    _customer_changeable(subscription)
    if subscription.provider == Provider.STRIPE:
        stripe_api.subscription_cancel_at_period_end(subscription.provider_ref, cancel=True)
    return _cancel_flag_set(subscription.pk, True, actor)


def subscription_resume(*, subscription: Subscription, actor: User | None = None) -> Subscription:
    """Take back a cancellation at period end: the subscription renews again. Idempotent.
    Raises SubscriptionError, or ProviderError when Stripe refuses."""
    _customer_changeable(subscription)
    if subscription.provider == Provider.STRIPE:
        stripe_api.subscription_cancel_at_period_end(subscription.provider_ref, cancel=False)
    return _cancel_flag_set(subscription.pk, False, actor)


def subscription_change_plan(
    *, subscription: Subscription, plan: Plan, actor: User | None = None
) -> bool:
    """Ask for PLAN instead of the current one (upgrade or downgrade). True when the change
    is already made, False when it waits for the provider.

    Stripe prorates and invoices the difference at once; the subscription's plan changes
    here when Stripe's customer.subscription.updated reports it, i.e. once that invoice is
    paid. Demo subscriptions change at once (no money moves). Raises SubscriptionError,
    or ProviderError when Stripe refuses."""
    _customer_changeable(subscription)
    if plan.pk == subscription.plan_id:
        raise SubscriptionError(_("This is your plan already."))
    if not plan.active:
        raise SubscriptionError(_("This plan is not offered any more."))
    if subscription.status != Status.ACTIVE:
        raise SubscriptionError(_("Settle the failed payment before changing the plan."))
    if plan.currency.lower() != subscription.plan.currency.lower():
        raise SubscriptionError(_("Plans in another currency cannot replace this one."))
    if subscription.provider == Provider.STRIPE:
        stripe_api.subscription_plan_change(subscription.provider_ref, plan=plan)
        _audit(subscription, "plan_change_requested", actor=actor, to=plan.slug)
        return False
    return subscription_plan_apply(
        provider=subscription.provider,
        provider_ref=subscription.provider_ref,
        plan=plan,
        actor=actor,
    )


def subscription_plan_apply(
    *, provider: str, provider_ref: str, plan: Plan, actor: User | None = None
) -> bool:
    """The provider moved the subscription to PLAN (Stripe: customer.subscription.updated).
    Atomic; True when the plan changed. Ended subscriptions are left alone."""
    with transaction.atomic():
        subscription = _locked(provider, provider_ref)
        if subscription is None or subscription.status not in CURRENT:
            return False
        if subscription.plan_id == plan.pk:
            return False
        before = subscription.plan.slug
        subscription.plan = plan
        subscription.save(update_fields=["plan", "updated_at"])
        _audit(subscription, "plan_changed", actor=actor, previous=before)
    return True


def subscription_expire(*, provider: str, provider_ref: str) -> bool:
    """The provider ended the subscription (Stripe: customer.subscription.deleted, or a
    status of canceled or unpaid). Atomic; True when it was current. Final: nothing but a
    renewal the provider confirms brings it back (subscription_renew)."""
    with transaction.atomic():
        subscription = _locked(provider, provider_ref)
        if subscription is None or subscription.status not in CURRENT:
            return False
        _end(subscription, Status.EXPIRED, f"ended at {provider}")
    return True


def subscriptions_demo_renew(*, now: dt.datetime | None = None) -> int:
    """Renew demo subscriptions whose period ended, free of charge, unless canceled at
    period end: the demo behaves like a paid plan without money. Returns how many."""
    now = now or timezone.now()
    due = Subscription.objects.filter(
        provider=DEMO, status=Status.ACTIVE, cancel_at_period_end=False
    ).filter(current_period_end__lte=now)
    renewed = 0
    for pk in list(due.values_list("pk", flat=True)):
        with transaction.atomic():
            subscription = _locked_pk(pk)
            if subscription.status != Status.ACTIVE or subscription.cancel_at_period_end:
                continue
            start, end = subscription.current_period_start, subscription.current_period_end
            while end <= now:
                start, end = end, period_end_after(end, subscription.plan.interval)
                # Each period renewed is a plan payment, as a paid plan's would be.
                plan_payment_record(
                    subscription=subscription,
                    provider=DEMO,
                    provider_ref=f"{subscription.provider_ref}:{start:%Y%m%dT%H%M%S}",
                    amount=subscription.plan.price,
                    currency=subscription.plan.currency,
                    period_start=start,
                    period_end=end,
                    paid_at=now,
                )
            subscription.current_period_start, subscription.current_period_end = start, end
            subscription.save(
                update_fields=["current_period_start", "current_period_end", "updated_at"]
            )
            _audit(subscription, "renewed", period_end=end.isoformat())
            renewed += 1
    return renewed


def subscriptions_expire_lapsed(*, now: dt.datetime | None = None) -> int:
    """Expire current subscriptions whose time is up: active ones whose period ended more
    than SUBSCRIPTION_GRACE_DAYS ago (no renewal arrived), past-due ones whose grace ended.
    Each is re-checked under its lock. Returns how many expired."""
    now = now or timezone.now()
    lapsed = list(
        Subscription.objects.filter(
            status=Status.ACTIVE, current_period_end__lt=now - grace_period()
        ).values_list("pk", flat=True)
    ) + list(
        Subscription.objects.filter(status=Status.PAST_DUE, grace_until__lt=now).values_list(
            "pk", flat=True
        )
    )
    expired = 0
    for pk in lapsed:
        with transaction.atomic():
            subscription = _locked_pk(pk)
            due = (
                subscription.status == Status.ACTIVE
                and subscription.current_period_end < now - grace_period()
            ) or (
                subscription.status == Status.PAST_DUE
                and subscription.grace_until is not None
                and subscription.grace_until < now
            )
            if due:
                _end(subscription, Status.EXPIRED, "lapsed")
                expired += 1
    return expired


# --- Monthly-quota emails ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QuotaAlert:
    subscription_id: int
    level: int  # percent: 80 or 100
    month: str  # "2026-12", UTC


def month_window(subscription: Subscription, *, now: dt.datetime) -> CapUse | None:
    """The use of the plan's monthly quota (None when the plan has none)."""
    for cap in plan_caps(subscription_id=subscription.pk, plan=subscription.plan):
        if cap.span == "M":
            return cap_use(cap, now=now)
    return None


def plan_quota_check(*, now: dt.datetime | None = None) -> list[QuotaAlert]:
    """Claim the monthly-quota emails due: for each subscription covering now whose plan
    has a monthly quota, the highest level (80 %, 100 %) its settled usage reached this
    month and not emailed yet this month (Subscription.quota_alert). One email per claim,
    queued on commit; overlapping runs claim each level once."""
    now = now or timezone.now()
    month = now.astimezone(dt.UTC).strftime("%Y-%m")
    claimed: list[QuotaAlert] = []
    candidates = Subscription.objects.filter(
        status__in=CURRENT, plan__month_limit__isnull=False
    ).select_related("plan")
    for subscription in candidates:
        if not subscription_covers(subscription, now):
            continue
        use = month_window(subscription, now=now)
        if use is None or use.limit <= 0:
            continue
        level = next((lv for lv in ALERT_LEVELS if use.used * 100 >= lv * use.limit), None)
        if level is None:
            continue
        with transaction.atomic():
            locked = Subscription.objects.select_for_update().get(pk=subscription.pk)
            sent = locked.quota_alert or {}
            if sent.get("month") == month and int(sent.get("level", 0)) >= level:
                continue
            locked.quota_alert = {"month": month, "level": level}
            locked.save(update_fields=["quota_alert", "updated_at"])
            alert = QuotaAlert(subscription_id=locked.pk, level=level, month=month)
            claimed.append(alert)
            transaction.on_commit(
                partial(send_plan_quota_email.delay, alert.subscription_id, level, month)
            )
    return claimed


# Defined beside the code that enqueues it (billing/tasks.py imports it for Celery's
# autodiscovery); the name stays the one queued messages and the beat schedule carry.
@shared_task(
    autoretry_for=(OSError,),
    max_retries=5,
    retry_backoff=True,
    name="billing.tasks.send_plan_quota_email",
)
def send_plan_quota_email(subscription_id: int, level: int, month: str) -> int:
    return plan_quota_email_send(subscription_id=subscription_id, level=level, month=month)


def billing_recipients(organization_id: int) -> list[str]:
    """The emails of the organization's owners and billing members."""
    return sorted(
        Membership.objects.filter(
            organization_id=organization_id,
            role__in=[Membership.Role.OWNER, Membership.Role.BILLING],
        ).values_list("user__email", flat=True)
    )


def plan_quota_email_send(
    *, subscription_id: int, level: int, month: str, now: dt.datetime | None = None
) -> int:
    """Email the organization's owners and billing members that LEVEL % of the monthly
    quota is used; returns the number of recipients."""
    now = now or timezone.now()
    subscription = Subscription.objects.select_related("plan", "organization").get(
        pk=subscription_id
    )
    recipients = billing_recipients(subscription.organization_id)
    use = month_window(subscription, now=now)
    if not recipients or use is None:
        return 0
    plan = subscription.plan
    resets = next_start("M", dt.datetime.strptime(month + "-01", "%Y-%m-%d").replace(tzinfo=dt.UTC))
    context = {
        "organization": subscription.organization,
        "plan": plan,
        "level": level,
        "percent": use.used * 100 // max(1, use.limit),
        "usd": plan.month_unit == Plan.Unit.USD,
        "used": use.used,
        "limit": use.limit,
        "resets": resets,
        "fallback": subscription.organization.plan_fallback,
        "url": settings.SITE_URL.rstrip("/") + "/dashboard/billing/#plans",
    }
    subject = render_to_string("billing/email/plan_quota_subject.txt", context).strip()
    body = render_to_string("billing/email/plan_quota_body.txt", context)
    send_mail(subject, body, None, recipients)
    return len(recipients)
