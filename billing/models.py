"""Money: wallets, the append-only ledger, holds, prices and pricing groups.

All amounts are integer micro-USD (1 = 0.000001 USD). Balance changes happen only in
billing.services, each with its ledger row in the same transaction.
"""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class PricingGroup(models.Model):
    """A customer tier: every price is multiplied by the group's multiplier."""

    name = models.SlugField(max_length=64, unique=True)
    multiplier = models.DecimalField(max_digits=10, decimal_places=4, default=Decimal("1"))
    description = models.CharField(max_length=200, blank=True)
    # What a top-up costs per USD of credit for this group (0.9 = 10% off).
    topup_rate = models.DecimalField(max_digits=10, decimal_places=4, default=Decimal("1"))

    def __str__(self) -> str:
        return f"{self.name} (x{self.multiplier})"


class PriceFields(models.Model):
    """A price sheet's columns, in micro-USD per 1M tokens (or per unit): what customers
    pay (Price) and what upstreams charge the operator (relay.CostPrice)."""

    input_per_1m = models.BigIntegerField(default=0)
    output_per_1m = models.BigIntegerField(default=0)
    cache_read_per_1m = models.BigIntegerField(null=True, blank=True)
    cache_write_per_1m = models.BigIntegerField(
        null=True, blank=True, help_text="5-minute cache writes; empty: the input price"
    )
    cache_write_1h_per_1m = models.BigIntegerField(
        null=True, blank=True, help_text="1-hour cache writes; empty: the 5-minute write price"
    )
    per_request = models.BigIntegerField(default=0)
    per_image = models.BigIntegerField(default=0)
    per_second = models.BigIntegerField(default=0)

    class Meta:
        abstract = True


PRICE_FIELDS = (
    "input_per_1m",
    "output_per_1m",
    "cache_read_per_1m",
    "cache_write_per_1m",
    "cache_write_1h_per_1m",
    "per_request",
    "per_image",
    "per_second",
)


class Price(PriceFields):
    """What a model costs customers, before their pricing group's multiplier."""

    model = models.CharField(max_length=200, unique=True)
    max_output_tokens = models.PositiveIntegerField(
        null=True, blank=True, help_text="Output cap used to size holds when a request sets none."
    )
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.model


class Wallet(models.Model):
    organization = models.OneToOneField(
        "accounts.Organization", on_delete=models.PROTECT, related_name="wallet"
    )
    balance = models.BigIntegerField(default=0)
    # Sum of open holds; available credit is balance + credit_limit - held.
    held = models.BigIntegerField(default=0)
    # Sum of this wallet's credit leases (CreditLease): credit reserved by serving
    # processes, which admit requests against it without a round trip.
    leased = models.BigIntegerField(default=0, db_default=0)
    # A credit line granted by staff: the balance may go down to -credit_limit (the hold
    # checks this floor as it checks zero without one). 0: prepaid only.
    credit_limit = models.BigIntegerField(default=0, db_default=0, help_text="micro-USD")
    # The number of the invoice whose non-payment suspends every key (billing/invoices.py);
    # on the wallet because the relay reads it with every key load anyway.
    overdue_invoice = models.CharField(max_length=32, blank=True, default="", db_default="")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints: ClassVar = [
            models.CheckConstraint(condition=models.Q(held__gte=0), name="wallet_held_nonneg"),
            models.CheckConstraint(condition=models.Q(leased__gte=0), name="wallet_leased_nonneg"),
            models.CheckConstraint(
                condition=models.Q(credit_limit__gte=0), name="wallet_credit_limit_nonneg"
            ),
        ]

    def __str__(self) -> str:
        return f"wallet of org {self.organization_id}"

    @property
    def available(self) -> int:
        """What the organization's requests may still spend: the balance and the credit
        line, less what requests in flight hold (leased credit is theirs to spend)."""
        return self.balance + self.credit_limit - self.held

    @property
    def free(self) -> int:
        """What a new hold may take: the available credit that is not leased."""
        return self.available - self.leased


class LedgerEntry(models.Model):
    """One balance change. Never updated or deleted; mistakes get reversing rows."""

    class Kind(models.TextChoices):
        TOPUP = "topup", _("Topup")
        REDEEM = "redeem", _("Redeem")
        CHARGE = "charge", _("Charge")
        REFUND = "refund", _("Refund")
        ADJUST = "adjust", _("Adjust")

    wallet = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="entries")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    amount = models.BigIntegerField(help_text="signed micro-USD")
    balance_after = models.BigIntegerField()
    # The external event this row records; unique so that replays credit nothing.
    source_type = models.CharField(max_length=32)
    source_id = models.CharField(max_length=128)
    note = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        verbose_name_plural = "ledger entries"
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["source_type", "source_id"], name="uniq_ledger_source")
        ]
        indexes: ClassVar = [models.Index(fields=["wallet", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount} ({self.source_type}:{self.source_id})"


class Hold(models.Model):
    """Credit reserved for a request or media task that has not settled yet."""

    wallet = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="holds")
    reference = models.CharField(max_length=64, unique=True)
    amount = models.BigIntegerField()
    api_key = models.ForeignKey(
        "accounts.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)
    # The serving process's lease (billing/leases.py); empty for media-task holds, which
    # outlive any process and expire instead.
    lease = models.CharField(max_length=40, blank=True, default="", db_index=True)
    # What the sweep settles if the process dies: {"cost": micro-USD, "log": the request
    # log row so far}. Metadata only, never content. A stream's progress is journaled
    # here, or in Redis when there is one (billing/journal.py).
    progress = models.JSONField(default=dict, blank=True)
    # Funded by this subscription's plan windows instead of the wallet (billing/plans.py).
    subscription_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    # The usage meters (UsageBucket.meter) the settlement adds to: the plan's, and the
    # key's and organization's when they have caps.
    meters = models.JSONField(
        default=list, blank=True, db_default=models.Value([], models.JSONField())
    )

    def __str__(self) -> str:
        return f"hold {self.reference} {self.amount}"


class Lease(models.Model):
    """A serving event loop's claim on the holds it places, renewed while it runs. Holds
    whose lease lapsed belong to a process that died: the sweep settles or releases them."""

    id = models.CharField(primary_key=True, max_length=40)
    host = models.CharField(max_length=200, blank=True)
    pid = models.IntegerField(default=0)
    started_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"lease {self.id} ({self.host} pid {self.pid})"


class CreditLease(models.Model):
    """Credit a serving event loop reserved from a wallet (billing/credit_leases.py): it
    admits requests against it in process and writes their holds behind, each drawn from
    this amount (and topped up again from the wallet's free credit while the loop uses
    it). Ended with its lease; the sweep gives back the credit of a lease that lapsed."""

    lease_id = models.CharField(max_length=40)
    wallet = models.ForeignKey(Wallet, on_delete=models.CASCADE, related_name="credit_leases")
    amount = models.BigIntegerField(default=0, help_text="micro-USD")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["lease_id", "wallet"], name="creditlease_once"),
            models.CheckConstraint(
                condition=models.Q(amount__gte=0), name="creditlease_amount_nonneg"
            ),
        ]

    def __str__(self) -> str:
        return f"credit lease {self.lease_id} on wallet {self.wallet_id}: {self.amount}"


class UncollectedUsage(models.Model):
    """Usage an upstream reported beyond what its request held: the customer is charged up
    to the hold and never more; the rest, which the operator pays the upstream for, is
    recorded here against the channel (ids, not foreign keys, like the request log)."""

    reference = models.CharField(max_length=64, unique=True)  # the request's id
    wallet_id = models.BigIntegerField()
    api_key_id = models.BigIntegerField(null=True, blank=True)
    channel_id = models.BigIntegerField(null=True, blank=True)
    model = models.CharField(max_length=200, blank=True)
    cost = models.BigIntegerField(help_text="micro-USD the usage was worth")
    amount = models.BigIntegerField(help_text="micro-USD not charged (cost - hold)")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        verbose_name_plural = "uncollected usage"
        indexes: ClassVar = [models.Index(fields=["channel_id", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.reference}: {self.amount} uncollected"


# --- Payments ---------------------------------------------------------------------------


class TopUp(models.Model):
    """A customer's purchase of credit through a payment provider.

    States: pending -> paid (credited in the same transaction) or failed/expired. A payment
    confirmed after failed/expired is still credited: money that arrived is never ignored.
    """

    class State(models.TextChoices):
        PENDING = "pending", _("Pending")
        PAID = "paid", _("Paid")
        FAILED = "failed", _("Failed")
        EXPIRED = "expired", _("Expired")

    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.PROTECT, related_name="topups"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    provider = models.CharField(max_length=16)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    # The credit bought (micro-USD) and the bonus included in it.
    credit = models.BigIntegerField(help_text="micro-USD credited when paid, bonus included")
    bonus = models.BigIntegerField(default=0, help_text="micro-USD")
    # What the customer pays, in the minor unit (cents, fen) of `currency`.
    pay_amount = models.BigIntegerField(help_text="minor units of currency")
    currency = models.CharField(max_length=3)
    # The provider's id for the checkout (Stripe session, EPay out_trade_no) and for the
    # payment itself (Stripe payment intent, EPay trade_no).
    provider_ref = models.CharField(max_length=128, blank=True)
    provider_payment_id = models.CharField(max_length=128, blank=True, db_index=True)
    redirect_url = models.URLField(max_length=2000, blank=True)
    # Cumulative amounts taken back, minor units; refunds and disputes debit the difference.
    refunded_amount = models.BigIntegerField(default=0)
    disputed_amount = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    # "Pay now" of an invoice: crediting this top-up pays it, in the same transaction.
    invoice = models.ForeignKey(
        "Invoice", null=True, blank=True, on_delete=models.PROTECT, related_name="topups"
    )

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["provider", "provider_ref"],
                condition=~models.Q(provider_ref=""),
                name="uniq_topup_provider_ref",
            ),
            models.CheckConstraint(condition=models.Q(credit__gt=0), name="topup_credit_pos"),
        ]

    def __str__(self) -> str:
        return f"top-up {self.pk} ({self.provider}, {self.state})"


class PaymentEvent(models.Model):
    """A provider's callback, stored raw before anything acts on it (unique per event)."""

    provider = models.CharField(max_length=16)
    event_id = models.CharField(max_length=255)
    event_type = models.CharField(max_length=100)
    payload = models.TextField()
    received_at = models.DateTimeField(default=timezone.now)
    processed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    error = models.CharField(max_length=500, blank=True)

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["provider", "event_id"], name="uniq_payment_event")
        ]

    def __str__(self) -> str:
        return f"{self.provider} {self.event_type} {self.event_id}"


# --- Redemption codes -------------------------------------------------------------------


class RedemptionBatch(models.Model):
    """Codes generated together: same amount, expiry and per-user limit."""

    name = models.CharField(max_length=150)
    amount = models.BigIntegerField(help_text="micro-USD per code")
    count = models.PositiveIntegerField()
    expires_at = models.DateTimeField(null=True, blank=True)
    per_user_limit = models.PositiveIntegerField(
        null=True, blank=True, help_text="codes of this batch one user may redeem"
    )
    # A code may also grant a plan for PLAN_DAYS days (billing/subscriptions.py); its
    # credit may then be 0.
    plan = models.ForeignKey(
        "Plan", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    plan_days = models.PositiveIntegerField(null=True, blank=True)
    # The codes in clear (encrypted at rest) until their one download; then emptied.
    pending_csv = models.TextField(blank=True)
    downloaded_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "redemption batches"
        constraints: ClassVar = [
            # Credit, a plan for some days, or both.
            models.CheckConstraint(
                condition=models.Q(amount__gt=0)
                | models.Q(amount=0, plan__isnull=False, plan_days__gt=0),
                name="batch_grants_something",
            ),
            models.CheckConstraint(
                condition=models.Q(plan__isnull=True, plan_days__isnull=True)
                | models.Q(plan__isnull=False, plan_days__gt=0),
                name="batch_plan_with_days",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class RedemptionCode(models.Model):
    """One code, known only by its SHA-256 (codes carry ~79 bits of entropy)."""

    batch = models.ForeignKey(RedemptionBatch, on_delete=models.PROTECT, related_name="codes")
    code_hash = models.CharField(max_length=64, unique=True)
    hint = models.CharField(max_length=8, help_text="last characters, for support")
    redeemed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    redeemed_organization = models.ForeignKey(
        "accounts.Organization", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    redeemed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"…{self.hint}"


# --- Alerts -----------------------------------------------------------------------------


class LowBalanceAlert(models.Model):
    """An organization's low-balance threshold; `alerted_at` is set while below it."""

    wallet = models.OneToOneField(Wallet, on_delete=models.CASCADE, related_name="low_balance")
    threshold = models.BigIntegerField(help_text="micro-USD")
    alerted_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"alert below {self.threshold} for wallet {self.wallet_id}"


class Plan(models.Model):
    """A subscription an operator sells: a price per period and usage quotas.

    Each quota is in USD-equivalent usage (micro-USD, priced with the normal price sheet)
    or in requests, over a rolling 5-hour window, a rolling week or the calendar month
    (UTC). Empty means unlimited."""

    class Interval(models.TextChoices):
        MONTH = "month", _("Monthly")
        YEAR = "year", _("Yearly")

    class Unit(models.TextChoices):
        USD = "usd", _("USD of usage")
        REQUESTS = "requests", _("Requests")

    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=64, unique=True)
    description = models.CharField(max_length=300, blank=True)
    price = models.BigIntegerField(help_text="per interval, in minor units of the currency")
    currency = models.CharField(max_length=3, default="usd")
    interval = models.CharField(max_length=8, choices=Interval.choices, default=Interval.MONTH)
    pricing_group = models.ForeignKey(
        PricingGroup,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        help_text="Granted to the subscriber's requests while subscribed (a key's own "
        "group still wins).",
    )
    covered_models = models.JSONField(
        default=list,
        blank=True,
        help_text="Models the plan covers (shell-style patterns); empty: all models.",
    )
    window_5h_limit = models.BigIntegerField(null=True, blank=True)
    window_5h_unit = models.CharField(max_length=8, choices=Unit.choices, default=Unit.USD)
    week_limit = models.BigIntegerField(null=True, blank=True)
    week_unit = models.CharField(max_length=8, choices=Unit.choices, default=Unit.USD)
    month_limit = models.BigIntegerField(null=True, blank=True)
    month_unit = models.CharField(max_length=8, choices=Unit.choices, default=Unit.USD)
    active = models.BooleanField(default=True, help_text="Offered on the billing page.")
    sort = models.IntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("sort", "price")

    def __str__(self) -> str:
        return self.name


class Subscription(models.Model):
    """An organization's plan. At most one is current (active or past due) per
    organization; renewals move its period, upgrades change its plan."""

    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        PAST_DUE = "past_due", _("Past due")
        CANCELED = "canceled", _("Canceled")
        EXPIRED = "expired", _("Expired")

    class Provider(models.TextChoices):
        STRIPE = "stripe", _("Stripe")
        CODE = "code", _("Redemption code")
        ADMIN = "admin", _("Granted by staff")
        DEMO = "demo", _("Demo payments")

    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.PROTECT, related_name="subscriptions"
    )
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="subscriptions")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    provider = models.CharField(max_length=16, choices=Provider.choices)
    # Stripe's subscription id; empty for codes and grants.
    provider_ref = models.CharField(max_length=128, blank=True)
    current_period_start = models.DateTimeField()
    current_period_end = models.DateTimeField()
    cancel_at_period_end = models.BooleanField(default=False)
    # A failed renewal keeps the plan until then.
    grace_until = models.DateTimeField(null=True, blank=True)
    # The month ("2026-12") and level (80, 100) of the last monthly-quota email.
    quota_alert = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["organization"],
                condition=models.Q(status__in=["active", "past_due"]),
                name="uniq_current_subscription",
            ),
            models.UniqueConstraint(
                fields=["provider", "provider_ref"],
                condition=~models.Q(provider_ref=""),
                name="uniq_subscription_provider_ref",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.plan} for org {self.organization_id} ({self.status})"


class UsageBucket(models.Model):
    """Usage counted for a plan window or a spend/request cap, per time bucket.

    `meter` is `s<subscription id>`, `k<key id>` or `o<organization id>`; `span` the
    bucket length: `m` 10 minutes and `h` one hour (rolling 5-hour and weekly plan
    windows), `d`, `w`, `M` the calendar day, week and month (UTC). Written with the
    settlement in the same transaction, so windows and caps survive any restart."""

    meter = models.CharField(max_length=24)
    span = models.CharField(max_length=1)
    start = models.DateTimeField()
    cost = models.BigIntegerField(default=0, help_text="micro-USD")
    requests = models.BigIntegerField(default=0)

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["meter", "span", "start"], name="uniq_usage_bucket")
        ]

    def __str__(self) -> str:
        return f"{self.meter} {self.span} {self.start:%Y-%m-%d %H:%M}"


# --- Documents: statements, credit notes, plan payments ---------------------------------


class PlanPayment(models.Model):
    """One payment for a subscription period (a Stripe invoice, a demo renewal): what the
    statements list as plan charges. Idempotent through (provider, provider_ref)."""

    subscription = models.ForeignKey(
        Subscription, on_delete=models.PROTECT, related_name="payments"
    )
    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.PROTECT, related_name="plan_payments"
    )
    provider = models.CharField(max_length=16)
    provider_ref = models.CharField(max_length=128, help_text="e.g. Stripe's invoice id")
    amount = models.BigIntegerField(help_text="minor units of the currency")
    currency = models.CharField(max_length=3, default="usd")
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    paid_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["provider", "provider_ref"], name="uniq_plan_payment_provider_ref"
            )
        ]

    def __str__(self) -> str:
        return f"plan payment {self.provider}:{self.provider_ref}"


class DocumentSequence(models.Model):
    """The last number given to a kind of document (credit notes). Taken with the row
    locked, in the transaction that creates the document: numbers never skip or repeat."""

    name = models.CharField(max_length=32, primary_key=True)
    last = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.name}: {self.last}"


class Statement(models.Model):
    """An organization's monthly statement, frozen when issued: its figures and the
    invoice details of both parties as they were then. Amounts in micro-USD of credit."""

    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.PROTECT, related_name="statements"
    )
    period = models.DateField(help_text="the first day of the month it covers (UTC)")
    opening_balance = models.BigIntegerField()
    topups = models.BigIntegerField(default=0)
    redemptions = models.BigIntegerField(default=0)
    usage = models.BigIntegerField(default=0, help_text="charged to the balance")
    refunds = models.BigIntegerField(default=0)
    adjustments = models.BigIntegerField(default=0)
    closing_balance = models.BigIntegerField()
    # Minor units of each currency paid for plans in the month: {"usd": 2000}.
    plan_charges = models.JSONField(default=dict, blank=True)
    # [{"model": ..., "requests": n, "cost": micro-USD, "plan_cost": micro-USD}, ...]
    usage_by_model = models.JSONField(default=list, blank=True)
    billed_to = models.JSONField(default=dict, blank=True, help_text="the organization's details")
    issuer = models.JSONField(default=dict, blank=True, help_text="the operator's details")
    issued_at = models.DateTimeField(default=timezone.now)
    emailed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["organization", "period"], name="uniq_statement")
        ]
        ordering = ("-period",)

    def __str__(self) -> str:
        return f"statement {self.period:%Y-%m} of org {self.organization_id}"


class CreditNote(models.Model):
    """A refund's credit note, numbered in one unbroken sequence per operator
    (DocumentSequence "credit_note"). One per refund ledger entry."""

    number = models.BigIntegerField(unique=True)
    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.PROTECT, related_name="credit_notes"
    )
    ledger_entry = models.OneToOneField(
        LedgerEntry, on_delete=models.PROTECT, related_name="credit_note"
    )
    topup = models.ForeignKey(
        TopUp, null=True, blank=True, on_delete=models.PROTECT, related_name="credit_notes"
    )
    credit = models.BigIntegerField(help_text="micro-USD of credit taken back")
    amount = models.BigIntegerField(help_text="minor units of the currency refunded")
    currency = models.CharField(max_length=3, default="usd")
    tax_rate = models.DecimalField(max_digits=6, decimal_places=3, default=Decimal("0"))
    reason = models.CharField(max_length=300, blank=True)
    billed_to = models.JSONField(default=dict, blank=True)
    issuer = models.JSONField(default=dict, blank=True)
    issued_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("-number",)

    def __str__(self) -> str:
        return f"credit note {self.number}"


class Invoice(models.Model):
    """What an organization with a credit line owes at the end of a month: minus its
    statement's closing balance, due INVOICE_DUE_DAYS later. Numbered in one unbroken
    sequence (DocumentSequence "invoice"); one per statement.

    States: open -> paid (by its own "Pay now" top-up or a transfer staff marked received)
    or void (staff cancelled it)."""

    class State(models.TextChoices):
        OPEN = "open", _("Open")
        PAID = "paid", _("Paid")
        VOID = "void", _("Void")

    number = models.BigIntegerField(unique=True)
    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.PROTECT, related_name="invoices"
    )
    statement = models.OneToOneField(
        Statement, null=True, blank=True, on_delete=models.PROTECT, related_name="invoice"
    )
    amount = models.BigIntegerField(help_text="micro-USD owed")
    state = models.CharField(max_length=8, choices=State.choices, default=State.OPEN)
    issued_at = models.DateTimeField(default=timezone.now)
    due_at = models.DateTimeField(db_index=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    # "top-up 42", or the bank transfer's reference staff typed in.
    payment_reference = models.CharField(max_length=200, blank=True)
    paid_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    billed_to = models.JSONField(default=dict, blank=True)
    issuer = models.JSONField(default=dict, blank=True)
    # Each email claimed once (set before sending, given back if the send fails).
    emailed_at = models.DateTimeField(null=True, blank=True)
    reminded_before_at = models.DateTimeField(null=True, blank=True)
    reminded_due_at = models.DateTimeField(null=True, blank=True)
    suspended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-number",)
        constraints: ClassVar = [
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="invoice_amount_pos"),
        ]

    def __str__(self) -> str:
        return f"invoice {self.number}"
