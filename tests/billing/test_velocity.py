"""Payment velocity: repeated failed payments, many small top-ups or a dispute flag an
organization for review and freeze its top-ups until staff clear the flag."""

from __future__ import annotations

import datetime as dt
import itertools
import json

import pytest
from django.test import Client

from accounts.models import AuditEvent, Organization, User
from billing.codes import code_redeem, redemption_batch_create
from billing.models import TopUp
from billing.velocity import payment_velocity_scan
from logs.models import ReviewFlag
from tests.billing.conftest import balance, create_topup, post_stripe, process_pending
from tests.fakes.stripe_api import FakeStripe

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]

NOW = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)
USD = 1_000_000
_ids = itertools.count()


def _topups(org: Organization, n: int, *, usd: int, state: str = TopUp.State.PENDING) -> None:
    for _ in range(n):
        TopUp.objects.create(
            organization=org, provider="stripe", state=state, credit=usd * USD,
            pay_amount=usd * 100, currency="USD", provider_ref=f"cs_test_{next(_ids)}",
        )  # fmt: skip


def _topup_attempt(client: Client, amount: str = "25") -> tuple[int, str]:
    response = client.post(
        "/api/v1/topups",
        data=json.dumps({"amount_usd": amount, "provider": "stripe"}),
        content_type="application/json",
    )
    return response.status_code, response.json().get("detail", "")


def test_repeated_failed_payments_freeze_top_ups(
    owner_client: Client, org: Organization, fake_stripe: FakeStripe
) -> None:
    _topups(org, 4, usd=20, state=TopUp.State.FAILED)
    assert _topup_attempt(owner_client)[0] == 201  # four failures: not yet
    _topups(org, 1, usd=20, state=TopUp.State.FAILED)

    status, detail = _topup_attempt(owner_client)

    assert status == 400 and "paused while our team reviews" in detail
    assert ReviewFlag.objects.get().reason == ReviewFlag.Reason.FAILED_PAYMENTS
    assert TopUp.objects.count() == 6  # the refused one was never created


def test_many_small_top_ups_freeze_top_ups_but_codes_still_work(
    owner_client: Client, org: Organization, owner: User
) -> None:
    _topups(org, 10, usd=2)

    status, detail = _topup_attempt(owner_client)
    code = redemption_batch_create(name="t", count=1, amount=3 * USD).codes[0]
    code_redeem(raw_code=code, user=owner, organization=org, ip="192.0.2.1")

    assert status == 400 and "redemption codes still work" in detail
    assert ReviewFlag.objects.get().reason == ReviewFlag.Reason.SMALL_TOPUPS
    assert balance(org) == 3 * USD


def test_old_top_ups_outside_the_window_do_not_count(org: Organization) -> None:
    _topups(org, 10, usd=2)
    TopUp.objects.update(created_at=NOW - dt.timedelta(hours=25))

    assert payment_velocity_scan(now=NOW) == 0
    TopUp.objects.update(created_at=NOW - dt.timedelta(hours=1))
    assert payment_velocity_scan(now=NOW) == 1  # the periodic scan flags too


def test_a_dispute_flags_the_organization_and_freezes_top_ups(
    owner_client: Client, org: Organization, fake_stripe: FakeStripe
) -> None:
    topup = create_topup(owner_client, "10")
    post_stripe(
        owner_client,
        fake_stripe.event("checkout.session.completed", fake_stripe.pay(topup.provider_ref)),
    )
    dispute = fake_stripe.dispute(fake_stripe.charge_for(topup.provider_ref)["id"])
    post_stripe(owner_client, fake_stripe.event("charge.dispute.created", dispute))
    post_stripe(owner_client, fake_stripe.event("charge.dispute.created", dispute))
    process_pending()

    status, detail = _topup_attempt(owner_client)

    flag = ReviewFlag.objects.get()
    assert (flag.reason, flag.detail) == (ReviewFlag.Reason.DISPUTE, {"topup": topup.pk})
    assert status == 400 and "paused" in detail


def test_staff_clear_a_flag_with_a_note_and_top_ups_resume(
    owner_client: Client, org: Organization, admin_client: Client, fake_stripe: FakeStripe
) -> None:
    _topups(org, 5, usd=20, state=TopUp.State.FAILED)
    assert _topup_attempt(owner_client)[0] == 400
    flag = ReviewFlag.objects.get()
    listing = admin_client.get("/admin/logs/reviewflag/?state=open")
    assert org.name in listing.content.decode()

    response = admin_client.post(
        f"/admin/logs/reviewflag/{flag.pk}/change/", {"clear_note": "Card replaced, called them"}
    )

    assert response.status_code == 302
    flag.refresh_from_db()
    assert flag.cleared_at is not None and flag.cleared_by is not None
    assert flag.clear_note == "Card replaced, called them"
    event = AuditEvent.objects.get(kind=AuditEvent.Kind.ORG_SETTINGS_CHANGED)
    assert event.organization == org and event.actor == flag.cleared_by
    assert event.meta == {
        "review_flag_cleared": flag.pk, "reason": "failed_payments",
        "note": "Card replaced, called them",
    }  # fmt: skip
    assert _topup_attempt(owner_client)[0] == 201  # the cleared failures do not count again
