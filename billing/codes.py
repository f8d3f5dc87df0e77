"""Redemption codes: generated in batches, stored as SHA-256, redeemed atomically once.
A code adds credit, grants a plan for some days (billing/subscriptions.py), or both.

Codes are 16 characters from an alphabet without look-alikes (no 0/O, 1/I/L), shown as
XXXX-XXXX-XXXX-XXXX: 31^16 ≈ 2^79, so an unsalted SHA-256 is enough to keep them secret
at rest, and brute force is further bounded by per-user and per-IP failure limits.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import secrets
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import Organization, User
from billing.exceptions import RedemptionError, RedemptionRateLimited
from billing.models import LedgerEntry, Plan, RedemptionBatch, RedemptionCode, Subscription, Wallet
from billing.services import wallet_credit
from billing.subscriptions import SubscriptionError, subscription_grant
from money import micros_to_usd
from sealed.fields import decrypt, encrypt

ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
GROUPS, GROUP_LEN = 4, 4
SOURCE_REDEEM = "redeem"
MAX_BATCH = 10_000


def code_normalize(raw: str) -> str:
    """What a customer typed, in canonical form: upper case, separators dropped."""
    return "".join(c for c in raw.upper() if c.isalnum())


def code_hash(raw: str) -> str:
    return hashlib.sha256(code_normalize(raw).encode()).hexdigest()


def _code_new() -> str:
    body = "".join(secrets.choice(ALPHABET) for _ in range(GROUPS * GROUP_LEN))
    return "-".join(body[i : i + GROUP_LEN] for i in range(0, len(body), GROUP_LEN))


@dataclass(frozen=True, slots=True)
class NewBatch:
    batch: RedemptionBatch
    codes: list[str]  # in clear: shown once, never stored


def redemption_batch_create(
    *,
    name: str,
    count: int,
    amount: int,
    expires_at: dt.datetime | None = None,
    per_user_limit: int | None = None,
    created_by: User | None = None,
    keep_for_download: bool = False,
    plan: Plan | None = None,
    plan_days: int | None = None,
) -> NewBatch:
    """Generate COUNT codes worth AMOUNT micro-USD each, and PLAN for PLAN_DAYS days when
    given (AMOUNT may then be 0). Atomic.

    Only hashes are stored. With KEEP_FOR_DOWNLOAD the clear codes are also kept,
    encrypted, until their one CSV download (`redemption_batch_download`).
    """
    if not 1 <= count <= MAX_BATCH:
        raise ValueError(f"count must be between 1 and {MAX_BATCH}")
    if (plan is None) != (plan_days is None):
        raise ValueError("a plan needs its number of days, and days need a plan")
    if plan_days is not None and plan_days < 1:
        raise ValueError("a plan is granted for at least one day")
    if amount < 0 or (amount == 0 and plan is None):
        raise ValueError("amount must be positive")
    if per_user_limit is not None and per_user_limit < 1:
        raise ValueError("per-user limit must be at least 1")
    codes: set[str] = set()
    while len(codes) < count:
        codes.add(_code_new())
    ordered = sorted(codes)
    with transaction.atomic():
        batch = RedemptionBatch.objects.create(
            name=name.strip() or "codes",
            amount=amount,
            count=count,
            expires_at=expires_at,
            per_user_limit=per_user_limit,
            plan=plan,
            plan_days=plan_days,
            created_by=created_by,
            pending_csv=encrypt("\n".join(ordered)) if keep_for_download else "",
            downloaded_at=None if keep_for_download else timezone.now(),
        )
        RedemptionCode.objects.bulk_create(
            RedemptionCode(batch=batch, code_hash=code_hash(c), hint=code_normalize(c)[-4:])
            for c in ordered
        )
    return NewBatch(batch=batch, codes=ordered)


def redemption_batch_download(*, batch_id: int) -> str:
    """The batch's codes as CSV, exactly once: the clear copy is erased in the same
    transaction. Raises RedemptionError when already downloaded."""
    with transaction.atomic():
        batch = RedemptionBatch.objects.select_for_update().get(pk=batch_id)
        if not batch.pending_csv:
            raise RedemptionError(_("These codes were already downloaded."))
        codes = decrypt(batch.pending_csv).splitlines()
        batch.pending_csv = ""
        batch.downloaded_at = timezone.now()
        batch.save(update_fields=["pending_csv", "downloaded_at"])
    out = io.StringIO()
    writer = csv.writer(out)
    # Batches that grant a plan say which, for how long (credit-only CSVs keep their shape).
    plan = [batch.plan.slug, str(batch.plan_days)] if batch.plan else []
    writer.writerow(
        ["code", "amount_usd", "expires_at", "batch"] + (["plan", "plan_days"] if plan else [])
    )
    expires = batch.expires_at.isoformat() if batch.expires_at else ""
    for c in codes:
        writer.writerow([c, micros_to_usd(batch.amount), expires, batch.name, *plan])
    return out.getvalue()


def _failure_keys(user: User, ip: str) -> list[str]:
    return [f"redeem-fail:user:{user.pk}", f"redeem-fail:ip:{ip}"]


def _check_rate(keys: list[str]) -> None:
    limit = settings.REDEEM_MAX_FAILURES
    if any((cache.get(k) or 0) >= limit for k in keys):
        raise RedemptionRateLimited(
            _("Too many failed attempts. Please wait a few minutes and try again.")
        )


def _count_failure(keys: list[str]) -> None:
    window = settings.REDEEM_FAILURE_WINDOW_SECONDS
    for key in keys:
        # add() starts the window without resetting it; incr() is atomic in Redis.
        cache.add(key, 0, timeout=window)
        try:
            cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.set(key, 1, timeout=window)


@dataclass(frozen=True, slots=True)
class Redemption:
    """What a code gave: credit (its ledger entry), a plan (the subscription), or both."""

    entry: LedgerEntry | None
    subscription: Subscription | None
    balance_after: int  # micro-USD

    @property
    def amount(self) -> int:
        return self.entry.amount if self.entry is not None else 0


def code_redeem(*, raw_code: str, user: User, organization: Organization, ip: str) -> Redemption:
    """Redeem a code into ORGANIZATION: credit to its wallet, a plan to its subscription.
    Atomic: however many requests race for one code, exactly one credits or grants; a plan
    that cannot be granted (another plan is current) leaves the code unused. Raises
    RedemptionError (clear message) otherwise; failures count against the user and the IP
    (RedemptionRateLimited past the limit)."""
    keys = _failure_keys(user, ip)
    _check_rate(keys)
    try:
        return _redeem(raw_code, user, organization)
    except RedemptionError:
        _count_failure(keys)
        raise


def _redeem(raw_code: str, user: User, organization: Organization) -> Redemption:
    normalized = code_normalize(raw_code)
    if len(normalized) != GROUPS * GROUP_LEN or any(c not in ALPHABET for c in normalized):
        raise RedemptionError(_("This is not a valid code."))
    now = timezone.now()
    with transaction.atomic():
        code = (
            RedemptionCode.objects.select_for_update()
            .select_related("batch")
            .filter(code_hash=code_hash(normalized))
            .first()
        )
        if code is None:
            raise RedemptionError(_("This is not a valid code."))
        if code.redeemed_at is not None:
            raise RedemptionError(_("This code has already been redeemed."))
        batch = code.batch
        if batch.expires_at is not None and batch.expires_at <= now:
            raise RedemptionError(_("This code has expired."))
        if batch.per_user_limit is not None:
            # Lock the batch so that one user's parallel redemptions count each other.
            RedemptionBatch.objects.select_for_update().filter(pk=batch.pk).first()
            used = RedemptionCode.objects.filter(batch=batch, redeemed_by=user).count()
            if used >= batch.per_user_limit:
                raise RedemptionError(
                    _("You have already redeemed the maximum number of these codes.")
                )
        code.redeemed_at, code.redeemed_by, code.redeemed_organization = now, user, organization
        code.save(update_fields=["redeemed_at", "redeemed_by", "redeemed_organization"])
        subscription = None
        if batch.plan is not None and batch.plan_days:
            try:
                subscription = subscription_grant(
                    organization=organization,
                    plan=batch.plan,
                    days=batch.plan_days,
                    provider=Subscription.Provider.CODE,
                    actor=user,
                    now=now,
                )
            except SubscriptionError as exc:  # rolls the redemption back: the code stays unused
                raise RedemptionError(str(exc)) from None
        entry = None
        if batch.amount > 0:
            entry, created = wallet_credit(
                organization=organization,
                amount=batch.amount,
                kind=LedgerEntry.Kind.REDEEM,
                source_type=SOURCE_REDEEM,
                source_id=str(code.pk),
                note=f"code …{code.hint} ({batch.name})",
                created_by=user,
            )
            if not created:  # cannot happen while the row lock holds; refuse loudly if it does
                raise RedemptionError(_("This code has already been redeemed."))
        balance = (
            entry.balance_after
            if entry is not None
            else Wallet.objects.filter(organization=organization)
            .values_list("balance", flat=True)
            .first()
            or 0
        )
    return Redemption(entry=entry, subscription=subscription, balance_after=balance)
