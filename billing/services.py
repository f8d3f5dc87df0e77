"""Every write that moves money. Each balance change writes its ledger row atomically."""

from __future__ import annotations

import datetime as dt
import uuid

from django.db import IntegrityError, transaction
from django.db.models import F

from accounts.audit import audit_record
from accounts.models import Organization, User
from billing.models import LedgerEntry, Price, PricingGroup, UsageBucket, Wallet

DEFAULT_GROUP = "default"


def wallet_credit(
    *,
    organization: Organization,
    amount: int,
    kind: str,
    source_type: str,
    source_id: str,
    note: str = "",
    created_by: User | None = None,
) -> tuple[LedgerEntry, bool]:
    """Add AMOUNT micro-USD (may be negative for refunds) exactly once per source.

    Atomic; returns (entry, created). A replay of the same (source_type, source_id)
    changes nothing and returns the existing entry with created=False.
    """
    if kind not in LedgerEntry.Kind.values:
        raise ValueError(f"unknown ledger kind {kind!r}")
    with transaction.atomic():
        # Lock the wallet first: concurrent credits serialise here, and a replay that
        # waited for the lock sees the entry the first one committed.
        wallet = Wallet.objects.select_for_update().get(organization=organization)
        existing = LedgerEntry.objects.filter(source_type=source_type, source_id=source_id).first()
        if existing is not None:
            return existing, False
        try:
            with transaction.atomic():
                entry = LedgerEntry.objects.create(
                    wallet=wallet,
                    kind=kind,
                    amount=amount,
                    balance_after=wallet.balance + amount,
                    source_type=source_type,
                    source_id=source_id,
                    note=note,
                    created_by=created_by,
                )
        except IntegrityError:
            # Same source recorded against another wallet concurrently: still a replay.
            return LedgerEntry.objects.get(source_type=source_type, source_id=source_id), False
        Wallet.objects.filter(pk=wallet.pk).update(balance=F("balance") + amount)
    return entry, True


def wallet_adjust(
    *, organization: Organization, amount: int, reason: str, created_by: User | None
) -> LedgerEntry:
    """An operator's correction, positive or negative. A reason is mandatory."""
    if not reason.strip():
        raise ValueError("an adjustment needs a reason")
    if amount == 0:
        raise ValueError("an adjustment of zero changes nothing")
    entry, _ = wallet_credit(
        organization=organization,
        amount=amount,
        kind=LedgerEntry.Kind.ADJUST,
        source_type="adjust",
        source_id=uuid.uuid4().hex,
        note=reason.strip(),
        created_by=created_by,
    )
    audit_record(
        kind="balance_adjusted", organization=organization, actor=created_by,
        amount_micros=amount, ledger_entry=entry.pk,
    )  # fmt: skip
    return entry


def wallet_credit_limit_set(
    *, organization: Organization, limit: int, reason: str, set_by: User | None
) -> Wallet:
    """Grant, change or withdraw (0) the organization's credit line: its balance may go
    down to -LIMIT micro-USD. Holds already placed stay; new ones check the new floor.
    Lowering it never touches the balance: a balance already below the new floor just
    admits no request until it is back above. A reason is mandatory; the change is
    audited with who made it."""
    if limit < 0:
        raise ValueError("a credit line cannot be negative")
    if not reason.strip():
        raise ValueError("a credit line change needs a reason")
    if limit > 0 and organization.verified_at is None:  # see accounts/verification
        raise ValueError("credit lines are granted to verified organizations only")
    with transaction.atomic():
        wallet = Wallet.objects.select_for_update().get(organization=organization)
        before = wallet.credit_limit
        wallet.credit_limit = limit
        wallet.save(update_fields=["credit_limit", "updated_at"])
        audit_record(
            kind="org_settings_changed", organization=organization, actor=set_by,
            credit_limit_micros=limit, previous_micros=before, reason=reason.strip()[:500],
        )  # fmt: skip
    return wallet


def wallet_create(*, organization: Organization) -> Wallet:
    wallet, _ = Wallet.objects.get_or_create(organization=organization)
    return wallet


def wallet_create_on_signal(*, organization: Organization, **_signal: object) -> None:
    """Receiver of accounts' organization_created: every organization has a wallet."""
    wallet_create(organization=organization)


def pricing_group_default() -> PricingGroup:
    group, _ = PricingGroup.objects.get_or_create(name=DEFAULT_GROUP)
    return group


_PRICE_FIELDS = (
    "input_per_1m",
    "output_per_1m",
    "cache_read_per_1m",
    "cache_write_per_1m",
    "cache_write_1h_per_1m",
    "per_request",
    "per_image",
    "per_second",
    "max_output_tokens",
)


def price_set(*, model: str, **fields: int | None) -> Price:
    """Create or update a model's price; only the given fields change (micro-USD)."""
    unknown = set(fields) - set(_PRICE_FIELDS)
    if unknown:
        raise ValueError(f"unknown price fields: {sorted(unknown)}")
    model = model.strip()
    if not model:
        raise ValueError("model name is empty")
    for name, value in fields.items():
        if value is not None and value < 0:
            raise ValueError(f"{name} cannot be negative")
    price, _ = Price.objects.get_or_create(model=model)
    for name, value in fields.items():
        setattr(price, name, value)
    price.save()
    return price


# The longest window counts a calendar month: older buckets count for nothing.
USAGE_BUCKET_DAYS = 40


def usage_buckets_purge(*, now: dt.datetime) -> int:
    """Delete usage buckets no window or cap counts any more; returns how many."""
    cutoff = now - dt.timedelta(days=USAGE_BUCKET_DAYS)
    deleted, _ = UsageBucket.objects.filter(start__lt=cutoff).delete()
    return deleted
