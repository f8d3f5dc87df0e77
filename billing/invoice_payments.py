"""Paying an invoice online: "Pay now" starts a top-up of the invoice's amount through the
normal top-up flow, linked to the invoice; crediting it pays the invoice
(billing/invoices.invoice_paid_by_topup, called from billing/topups.topup_confirm)."""

from __future__ import annotations

from decimal import Decimal

from django.utils.translation import gettext as _

from accounts.models import User
from billing.exceptions import InvalidTopUp
from billing.models import Invoice, TopUp
from billing.topups import topup_create

MICROS_PER_CENT = 10_000


def invoice_pay_usd(invoice: Invoice) -> Decimal:
    """What "Pay now" charges: the amount owed, rounded up to the cent (top-ups are in
    whole cents; never less than owed, so the top-up always pays the invoice in full)."""
    cents = -(-invoice.amount // MICROS_PER_CENT)
    return Decimal(cents) / 100


def invoice_pay_start(*, invoice: Invoice, created_by: User | None, provider: str) -> TopUp:
    """Create the pending top-up that pays INVOICE. Raises InvalidTopUp when the invoice is
    not open or its amount is outside the top-up limits (then: bank transfer), and what
    topup_create raises. Nothing is credited or paid here."""
    if invoice.state != Invoice.State.OPEN:
        raise InvalidTopUp(_("This invoice is not open any more."))
    topup = topup_create(
        organization=invoice.organization,
        created_by=created_by,
        amount_usd=invoice_pay_usd(invoice),
        provider=provider,
    )
    # Linked before the customer is sent to the checkout, so before any payment of it
    # can be confirmed.
    TopUp.objects.filter(pk=topup.pk).update(invoice=invoice)
    topup.invoice = invoice
    return topup
