"""Top-ups: quotes, pending top-ups, crediting paid ones exactly once, refunds and disputes.

Every credit of a top-up is the ledger row ("topup", <top-up id>): however many callbacks,
retries, recovery runs and races confirm the same payment, the wallet moves once. Refunds
and disputes debit the difference between what has been taken back so far and what the
provider now reports, each step under a unique source id.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import Organization, User
from billing.credit_notes import credit_note_issue
from billing.exceptions import InvalidTopUp, PaymentMismatch, PaymentNotReady
from billing.invoices import invoice_paid_by_topup
from billing.models import LedgerEntry, PricingGroup, TopUp
from billing.providers import PaymentStatus, ProviderError, provider_get
from billing.services import DEFAULT_GROUP, wallet_credit
from billing.velocity import topup_velocity_check
from money import MICROS_PER_USD, InvalidAmount, usd_to_micros

log = logging.getLogger(__name__)

SOURCE_TOPUP = "topup"
SOURCE_TOPUP_REVERSAL = "topup-reversal"
CENT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class Quote:
    amount_usd: Decimal  # the credit bought, before bonus
    bonus_percent: Decimal
    bonus: int  # micro-USD
    credit: int  # micro-USD, bonus included
    rate: Decimal  # the pricing group's top-up rate
    charge_usd: Decimal  # what the customer pays, in USD


def bonus_tiers() -> list[tuple[Decimal, Decimal]]:
    """(threshold USD, percent) pairs from TOPUP_BONUS_TIERS, highest threshold first."""
    tiers = []
    for item in settings.TOPUP_BONUS_TIERS:
        threshold, _, percent = item.partition(":")
        tiers.append((Decimal(threshold.strip()), Decimal(percent.strip())))
    return sorted(tiers, reverse=True)


def topup_rate(*, organization: Organization) -> Decimal:
    group = organization.pricing_group or PricingGroup.objects.filter(name=DEFAULT_GROUP).first()
    return group.topup_rate if group is not None else Decimal(1)


def topup_quote(*, organization: Organization, amount_usd: str | Decimal) -> Quote:
    """What buying AMOUNT_USD of credit costs and credits; raises InvalidTopUp."""
    try:
        micros = usd_to_micros(amount_usd)
    except InvalidAmount:
        raise InvalidTopUp(_("Not an amount: %(value)s") % {"value": amount_usd}) from None
    amount = Decimal(micros) / MICROS_PER_USD
    if amount != amount.quantize(CENT):
        raise InvalidTopUp(_("A top-up amount is in whole cents."))
    low, high = Decimal(settings.TOPUP_MIN_USD), Decimal(settings.TOPUP_MAX_USD)
    if not low <= amount <= high:
        raise InvalidTopUp(
            _("A top-up is between %(low)s and %(high)s USD.") % {"low": low, "high": high}
        )
    # Operator setting: larger top-ups only for organizations staff verified.
    above = settings.VERIFICATION_REQUIRED_ABOVE_USD
    if above and amount > Decimal(above) and organization.verified_at is None:
        raise InvalidTopUp(
            _("Top-ups above %(limit)s USD need a verified organization (organization page).")
            % {"limit": Decimal(above)}
        )
    percent = next((p for t, p in bonus_tiers() if amount >= t), Decimal(0))
    bonus = int((micros * percent / 100).to_integral_value(rounding=ROUND_HALF_UP))
    rate = topup_rate(organization=organization)
    charge = (amount * rate).quantize(CENT, rounding=ROUND_HALF_UP)
    if charge <= 0:
        raise InvalidTopUp(_("This top-up would cost nothing."))
    return Quote(
        amount_usd=amount,
        bonus_percent=percent,
        bonus=bonus,
        credit=micros + bonus,
        rate=rate,
        charge_usd=charge,
    )


def topup_create(
    *,
    organization: Organization,
    created_by: User | None,
    amount_usd: str | Decimal,
    provider: str,
) -> TopUp:
    """Create a pending top-up and its checkout at the provider.

    Raises InvalidTopUp, ProviderUnavailable or ProviderError (the top-up is then failed).
    Nothing is credited here: only a confirmed payment credits.
    """
    topup_velocity_check(organization=organization)  # frozen while flagged for review
    payment = provider_get(provider)
    quote = topup_quote(organization=organization, amount_usd=amount_usd)
    topup = TopUp.objects.create(
        organization=organization,
        created_by=created_by,
        provider=provider,
        credit=quote.credit,
        bonus=quote.bonus,
        pay_amount=payment.minor_amount(quote.charge_usd),
        currency=payment.currency,
    )
    # The provider call is outside any transaction: no lock is held across the network.
    try:
        checkout = payment.create_payment(topup)
    except ProviderError:
        TopUp.objects.filter(pk=topup.pk).update(state=TopUp.State.FAILED)
        raise
    topup.provider_ref, topup.redirect_url = checkout.ref, checkout.url
    topup.save(update_fields=["provider_ref", "redirect_url"])
    return topup


def topup_confirm(*, topup_id: int, payment_id: str, amount: int, currency: str) -> bool:
    """Credit a paid top-up exactly once. Atomic.

    AMOUNT (minor units) and CURRENCY are what the provider says was paid; a difference
    from the top-up raises PaymentMismatch and credits nothing. Returns True only for the
    call that credited; every repeat (or race loser) returns False and changes nothing.
    """
    with transaction.atomic():
        topup = TopUp.objects.select_for_update().get(pk=topup_id)
        if amount != topup.pay_amount or currency.upper() != topup.currency.upper():
            raise PaymentMismatch(
                f"top-up {topup.pk}: paid {amount} {currency.upper()}, "
                f"expected {topup.pay_amount} {topup.currency}"
            )
        _, created = wallet_credit(
            organization=topup.organization,
            amount=topup.credit,
            kind=LedgerEntry.Kind.TOPUP,
            source_type=SOURCE_TOPUP,
            source_id=str(topup.pk),
            note=f"{topup.provider} top-up",
            created_by=topup.created_by,
        )
        if topup.state != TopUp.State.PAID:
            topup.state = TopUp.State.PAID
            topup.paid_at = timezone.now()
            topup.provider_payment_id = payment_id or topup.provider_payment_id
            topup.save(update_fields=["state", "paid_at", "provider_payment_id"])
        if topup.invoice_id is not None:  # its invoice is paid in this same transaction
            invoice_paid_by_topup(topup=topup)
    return created


def topup_close(*, topup_id: int, state: str) -> bool:
    """Mark a still-pending top-up failed or expired; a paid one is never touched."""
    if state not in (TopUp.State.FAILED, TopUp.State.EXPIRED):
        raise ValueError(f"cannot close a top-up as {state!r}")
    return bool(TopUp.objects.filter(pk=topup_id, state=TopUp.State.PENDING).update(state=state))


def _debit_for(topup: TopUp, taken: int) -> int:
    """The credit that TAKEN minor units of the payment bought (bonus in proportion)."""
    taken = min(taken, topup.pay_amount)
    return topup.credit * taken // topup.pay_amount


def _take_back(
    topup: TopUp, *, refunded: int, disputed: int, source_id: str, note: str
) -> LedgerEntry | None:
    before = _debit_for(topup, topup.refunded_amount + topup.disputed_amount)
    after = _debit_for(topup, refunded + disputed)
    topup.refunded_amount, topup.disputed_amount = refunded, disputed
    topup.save(update_fields=["refunded_amount", "disputed_amount"])
    if after == before:
        return None
    entry, _ = wallet_credit(
        organization=topup.organization,
        amount=before - after,
        kind=LedgerEntry.Kind.REFUND,
        source_type=SOURCE_TOPUP_REVERSAL,
        source_id=source_id,
        note=note,
    )
    return entry


def _paid_topup_for_update(topup_id: int) -> TopUp:
    topup = TopUp.objects.select_for_update().select_related("organization").get(pk=topup_id)
    if topup.state != TopUp.State.PAID:
        raise PaymentNotReady(f"top-up {topup.pk} is not credited yet")
    return topup


def topup_refund_record(*, topup_id: int, refunded_total: int) -> LedgerEntry | None:
    """Record that REFUNDED_TOTAL (cumulative, minor units) of the payment was refunded.

    Atomic and idempotent: debits only the part not debited before, so replays and
    out-of-order reports (a smaller cumulative total) change nothing. Raises
    PaymentNotReady while the top-up is not credited yet.
    """
    with transaction.atomic():
        topup = _paid_topup_for_update(topup_id)
        if refunded_total <= topup.refunded_amount:
            return None
        refunded_now = min(refunded_total, topup.pay_amount) - topup.refunded_amount
        note = f"{topup.provider} refund of top-up {topup.pk}"
        entry = _take_back(
            topup,
            refunded=refunded_total,
            disputed=topup.disputed_amount,
            source_id=f"{topup.pk}:refund:{refunded_total}",
            note=note,
        )
        if entry is not None:  # its credit note, numbered in this transaction (not disputes)
            credit_note_issue(entry=entry, topup=topup, reason=note, amount=refunded_now)
        return entry


def topup_dispute_record(*, topup_id: int, dispute_id: str, amount: int) -> LedgerEntry | None:
    """Debit a disputed payment (AMOUNT minor units) once per dispute. Atomic, idempotent."""
    source_id = f"{topup_id}:dispute:{dispute_id}"
    with transaction.atomic():
        topup = _paid_topup_for_update(topup_id)
        if LedgerEntry.objects.filter(
            source_type=SOURCE_TOPUP_REVERSAL, source_id=source_id
        ).exists():
            return None
        return _take_back(
            topup,
            refunded=topup.refunded_amount,
            disputed=topup.disputed_amount + amount,
            source_id=source_id,
            note=f"{topup.provider} dispute {dispute_id} on top-up {topup.pk}",
        )


def topup_refund_request(*, topup_id: int, amount: int | None = None) -> str:
    """Ask the provider to refund AMOUNT (minor units; default: all not yet taken back).

    Changes no balance: the provider's confirmation (Stripe: charge.refunded) debits the
    ledger, exactly once, like a refund made in the provider's own dashboard.
    """
    topup = TopUp.objects.get(pk=topup_id)
    if topup.state != TopUp.State.PAID:
        raise ProviderError("only a paid top-up can be refunded")
    remaining = topup.pay_amount - topup.refunded_amount - topup.disputed_amount
    amount = remaining if amount is None else amount
    if not 0 < amount <= remaining:
        raise ProviderError("nothing (or less than that) is left to refund")
    return provider_get(topup.provider).refund(topup, amount)


def topup_recover(*, topup: TopUp) -> PaymentStatus:
    """Ask the provider what became of a pending top-up and act on it (credit or close).

    Safe to run any number of times and concurrently with webhooks: crediting is
    exactly once.
    """
    report = provider_get(topup.provider).query_status(topup)
    if report.status == PaymentStatus.PAID:
        topup_confirm(
            topup_id=topup.pk,
            payment_id=report.payment_id,
            amount=report.amount if report.amount is not None else topup.pay_amount,
            currency=report.currency or topup.currency,
        )
    elif report.status in (PaymentStatus.FAILED, PaymentStatus.EXPIRED):
        topup_close(topup_id=topup.pk, state=str(report.status))
    return report.status


def topups_recover(*, older_than_seconds: int, max_age_days: int = 3) -> dict[str, int]:
    """Recover pending top-ups whose callback never came (between the two ages)."""
    now = timezone.now()
    pending = TopUp.objects.filter(
        state=TopUp.State.PENDING,
        created_at__lt=now - dt.timedelta(seconds=older_than_seconds),
        created_at__gt=now - dt.timedelta(days=max_age_days),
    ).exclude(provider_ref="")
    counts: dict[str, int] = {}
    for topup in pending.order_by("created_at")[:500]:
        try:
            status = topup_recover(topup=topup)
        except Exception:
            # One provider outage or bad row must not stop the others; the next run retries.
            log.exception("recovering top-up %s failed", topup.pk)
            status = PaymentStatus.UNKNOWN
        counts[status] = counts.get(status, 0) + 1
    return counts
