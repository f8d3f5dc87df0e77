"""`manage.py billing reconcile`: passes on books exercised by every money flow, fails (and
alerts admins) once a ledger row, a wallet, a hold or a top-up is tampered with."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.core import mail
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.utils import timezone

from accounts.models import Organization, User
from accounts.selectors import organization_personal
from accounts.services import user_create
from billing.codes import redemption_batch_create
from billing.holds import Settlement, hold_place, hold_settle
from billing.leases import lease_renew
from billing.models import CreditNote, Hold, LedgerEntry, TopUp, Wallet
from billing.services import wallet_adjust
from billing.tasks import billing_reconcile
from logs.models import RequestLog
from logs.records import RequestRecord
from tests.billing.conftest import create_topup, post_stripe, process_pending
from tests.billing.test_codes import _redeem
from tests.fakes.stripe_api import FakeStripe
from tests.test_cli import Manage, manage

__all__ = ["manage"]  # the fixture

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]


def _reconcile() -> tuple[bool, str]:
    out = io.StringIO()
    try:
        call_command("billing", "reconcile", stdout=out)
    except CommandError as exc:
        return False, out.getvalue() + str(exc)
    return True, out.getvalue()


@pytest.fixture
def exercised(
    owner_client: Client, owner: User, org: Organization, fake_stripe: FakeStripe, admin_user: User
) -> Wallet:
    """Books touched by every flow: top-up, refund, code, adjustment, charges, an open hold."""
    topup = create_topup(owner_client, "50")
    post_stripe(
        owner_client,
        fake_stripe.event("checkout.session.completed", fake_stripe.pay(topup.provider_ref)),
    )
    create_topup(owner_client, "5")  # abandoned: stays pending
    process_pending()
    charge = fake_stripe.charge_for(topup.provider_ref)["id"]
    post_stripe(
        owner_client, fake_stripe.event("charge.refunded", fake_stripe.refund_charge(charge, 700))
    )
    process_pending()
    code = redemption_batch_create(name="r", count=1, amount=2_000_000).codes[0]
    assert _redeem(owner_client, code)[0] == 200
    wallet_adjust(organization=org, amount=-1_000_000, reason="goodwill", created_by=admin_user)
    wallet = Wallet.objects.get(organization=org)
    for n in range(3):
        hold_place(
            reference=f"req{n}", wallet_id=wallet.pk, api_key_id=None, amount=900_000,
            ttl_seconds=600,
        )  # fmt: skip
        if n < 2:
            record = RequestRecord(timezone.now(), org.pk, None, "chat", upstream_cost=98_765)
            hold_settle(Settlement(f"req{n}", wallet.pk, None, 123_456, record))
    wallet.refresh_from_db()
    assert (
        wallet.held == 900_000
        and wallet.balance == 50_000_000 - 7_000_000 + 2_000_000 - 1_000_000 - 246_912
    )
    return wallet


def test_it_passes_on_books_exercised_by_every_flow(exercised: Wallet) -> None:
    ok, output = _reconcile()

    assert ok, output
    assert "ok: the books balance" in output
    assert billing_reconcile() == 0
    assert mail.outbox == []


@pytest.mark.books_tampered
def test_it_fails_when_a_ledger_row_is_tampered_with(exercised: Wallet, admin_user: User) -> None:
    entry = LedgerEntry.objects.filter(wallet=exercised, kind="redeem").get()
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE billing_ledgerentry SET amount = amount + 1 WHERE id = %s", [entry.pk]
        )

    ok, output = _reconcile()

    assert not ok
    assert f"balance: wallet {exercised.pk}" in output and "1 discrepancies" in output
    assert billing_reconcile() == 1
    assert len(mail.outbox) == 1 and admin_user.email in mail.outbox[0].to
    assert f"wallet {exercised.pk}" in mail.outbox[0].body


@pytest.mark.books_tampered
def test_it_reports_held_credit_without_holds_and_stale_holds(exercised: Wallet) -> None:
    Hold.objects.filter(reference="req2").update(expires_at=timezone.now() - dt.timedelta(hours=1))
    Wallet.objects.filter(pk=exercised.pk).update(held=0)

    ok, output = _reconcile()

    assert not ok
    assert "held: wallet" in output and "hold: hold req2" in output


@pytest.mark.books_tampered
def test_it_reports_a_request_charged_past_its_hold(exercised: Wallet) -> None:
    RequestLog.objects.filter(request_id="req0").update(cost=900_001)

    ok, output = _reconcile()

    assert not ok
    assert "request: request req0: charged 0.900001, more than its hold of 0.900000" in output
    assert "req1" not in output


def test_it_reports_billed_requests_without_an_upstream_cost(exercised: Wallet) -> None:
    RequestLog.objects.filter(request_id="req1").update(upstream_cost=None, channel_id=7)
    # Requests nobody billed need no upstream cost.
    RequestLog.objects.create(request_id="free", organization_id=1, endpoint="chat",
                              status_code=502, channel_id=7)  # fmt: skip

    ok, output = _reconcile()

    assert not ok
    assert "upstream_cost: channel 7: 1 billed requests without an upstream cost" in output


@pytest.mark.books_tampered
def test_it_reports_a_refund_without_its_credit_note(exercised: Wallet) -> None:
    refund = LedgerEntry.objects.get(wallet=exercised, kind="refund")
    CreditNote.objects.filter(ledger_entry=refund).delete()

    ok, output = _reconcile()

    assert not ok
    assert f"credit_note: ledger entry {refund.pk}: a refund without a credit note" in output


def test_it_reports_a_paid_topup_that_was_never_credited(exercised: Wallet) -> None:
    pending = TopUp.objects.get(state=TopUp.State.PENDING)
    TopUp.objects.filter(pk=pending.pk).update(state=TopUp.State.PAID)

    ok, output = _reconcile()

    assert not ok
    assert f"topup: top-up {pending.pk}: paid but never credited" in output


@pytest.mark.django_db(transaction=True)
@pytest.mark.books_tampered
def test_the_command_exits_non_zero_on_discrepancies(manage: Manage) -> None:
    org = organization_personal(user=user_create(email="cli@example.com"))
    wallet_adjust(organization=org, amount=3_000_000, reason="seed", created_by=None)
    assert manage("billing", "reconcile").returncode == 0

    with connection.cursor() as cursor:
        cursor.execute("UPDATE billing_wallet SET balance = balance + 5")
    result = manage("billing", "reconcile")

    assert result.returncode != 0
    assert "balance: wallet" in result.stdout and "discrepancies" in result.stderr


def test_it_reports_provider_events_left_unprocessed(exercised: Wallet) -> None:
    from billing.models import PaymentEvent

    PaymentEvent.objects.create(
        provider="stripe", event_id="evt_stuck", event_type="charge.refunded", payload="{}",
        received_at=timezone.now() - dt.timedelta(days=2), attempts=13, error="no top-up yet",
    )  # fmt: skip

    ok, output = _reconcile()

    assert not ok
    assert "event: stripe event evt_stuck: unprocessed after 13 attempts: no top-up yet" in output


def test_it_reports_the_holds_of_a_dead_server_left_unswept(exercised: Wallet) -> None:
    long_ago = timezone.now() - dt.timedelta(hours=1)
    Hold.objects.filter(reference="req2").update(lease="ls_dead", created_at=long_ago)
    ok, output = _reconcile()
    assert not ok
    assert "hold: hold req2: its server (lease ls_dead) died" in output
    # The same hold under a server that is still running is fine.
    lease_renew(lease_id="ls_dead", ttl_seconds=60)
    assert _reconcile()[0]
