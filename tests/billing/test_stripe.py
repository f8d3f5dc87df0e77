"""Stripe top-ups end to end: the official client against a loopback stub of Stripe's API,
genuinely signed webhooks posted to the real endpoint, credits exactly once."""

from __future__ import annotations

import json
import time

import pytest
from django.conf import settings
from django.test import Client

from accounts.models import Organization, User
from billing.events import Outcome, payment_event_process
from billing.models import LedgerEntry, PaymentEvent, TopUp
from billing.topups import topups_recover
from tests.billing.conftest import balance, create_topup, post_stripe, process_pending
from tests.conftest import MakeKey
from tests.fakes.stripe_api import FakeStripe, signed

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]


def _paid_topup(client: Client, fake: FakeStripe, amount: str = "25") -> tuple[TopUp, str]:
    topup = create_topup(client, amount)
    session = fake.pay(topup.provider_ref)
    return topup, fake.event("checkout.session.completed", session)


def test_it_creates_a_pending_topup_with_a_checkout_session(
    owner_client: Client, org: Organization, fake_stripe: FakeStripe
) -> None:
    response = owner_client.post(
        "/api/v1/topups",
        data=json.dumps({"amount_usd": "25", "provider": "stripe"}),
        content_type="application/json",
    )

    assert response.status_code == 201
    body = response.json()
    topup = TopUp.objects.get(pk=body["id"])
    assert body["state"] == "pending" and body["credit_usd"] == "25.000000"
    assert body["url"] == fake_stripe.sessions[topup.provider_ref]["url"]
    assert fake_stripe.sessions[topup.provider_ref]["amount_total"] == 2500
    assert fake_stripe.sessions[topup.provider_ref]["client_reference_id"] == str(topup.pk)
    method, path, headers = fake_stripe.requests[-1]
    assert (method, path) == ("POST", "/v1/checkout/sessions")
    assert headers["idempotency-key"] == f"tokenhub-topup-{topup.pk}"
    assert headers["stripe-version"] == settings.STRIPE_API_VERSION
    assert balance(org) == 0


@pytest.mark.parametrize("amount", ["0.50", "10001", "abc", "5.001"])
def test_it_refuses_amounts_outside_the_bounds(
    owner_client: Client, fake_stripe: FakeStripe, amount: str
) -> None:
    response = owner_client.post(
        "/api/v1/topups",
        data=json.dumps({"amount_usd": amount, "provider": "stripe"}),
        content_type="application/json",
    )

    assert response.status_code == 400
    assert response.json()["detail"]
    assert not TopUp.objects.exists() and not fake_stripe.requests


def test_it_says_when_a_provider_is_not_configured(owner_client: Client) -> None:
    response = owner_client.post(
        "/api/v1/topups",
        data=json.dumps({"amount_usd": "25", "provider": "epay"}),
        content_type="application/json",
    )

    assert response.status_code == 400
    assert "not configured" in response.json()["detail"]


def test_it_fails_the_topup_when_stripe_refuses(
    owner_client: Client, fake_stripe: FakeStripe
) -> None:
    fake_stripe.fail_creates = True

    response = owner_client.post(
        "/api/v1/topups",
        data=json.dumps({"amount_usd": "25", "provider": "stripe"}),
        content_type="application/json",
    )

    assert response.status_code == 502
    assert "Stripe says no" in response.json()["detail"]
    assert TopUp.objects.get().state == TopUp.State.FAILED


def test_it_credits_a_completed_checkout_once_however_often_it_is_delivered(
    owner_client: Client, org: Organization, fake_stripe: FakeStripe
) -> None:
    topup, event = _paid_topup(owner_client, fake_stripe)

    for _ in range(3):  # Stripe retries; an attacker replays a captured body
        assert post_stripe(owner_client, event).status_code == 200
    assert PaymentEvent.objects.count() == 1
    assert balance(org) == 0  # nothing before the task runs
    assert process_pending() == ["processed"]
    assert post_stripe(owner_client, event).json()["duplicate"] is True
    assert process_pending() == []

    topup.refresh_from_db()
    assert topup.state == TopUp.State.PAID and topup.provider_payment_id.startswith("pi_")
    assert balance(org) == 25_000_000
    assert LedgerEntry.objects.filter(kind="topup").count() == 1


def test_it_credits_once_when_different_events_report_the_same_payment(
    owner_client: Client, org: Organization, fake_stripe: FakeStripe
) -> None:
    topup = create_topup(owner_client, "10")
    session = fake_stripe.pay(topup.provider_ref)
    # Out of order: the async success arrives before the completion, each twice.
    second = fake_stripe.event("checkout.session.async_payment_succeeded", session)
    first = fake_stripe.event("checkout.session.completed", session)
    for payload in (second, first, second, first):
        post_stripe(owner_client, payload)

    process_pending()

    assert PaymentEvent.objects.count() == 2
    assert balance(org) == 10_000_000


def test_it_waits_for_a_delayed_payment_and_closes_a_failed_one(
    owner_client: Client, org: Organization, fake_stripe: FakeStripe
) -> None:
    ok = create_topup(owner_client, "10")
    bad = create_topup(owner_client, "20")
    for topup in (ok, bad):
        post_stripe(
            owner_client,
            fake_stripe.event(
                "checkout.session.completed", fake_stripe.pay(topup.provider_ref, delayed=True)
            ),
        )
    process_pending()
    assert balance(org) == 0

    post_stripe(
        owner_client,
        fake_stripe.event(
            "checkout.session.async_payment_succeeded", fake_stripe.settle_delayed(ok.provider_ref)
        ),
    )
    post_stripe(
        owner_client,
        fake_stripe.event(
            "checkout.session.async_payment_failed", fake_stripe.sessions[bad.provider_ref]
        ),
    )
    process_pending()

    assert balance(org) == 10_000_000
    assert TopUp.objects.get(pk=bad.pk).state == TopUp.State.FAILED


@pytest.mark.parametrize(
    "tamper",
    ["wrong-secret", "stale", "body-changed", "missing", "other-api-version"],
)
def test_it_rejects_forged_or_stale_webhooks_without_side_effects(
    owner_client: Client, org: Organization, fake_stripe: FakeStripe, tamper: str
) -> None:
    topup, event = _paid_topup(owner_client, fake_stripe)
    signature = signed(event)
    if tamper == "wrong-secret":
        signature = signed(event, secret="whsec_attacker")
    elif tamper == "stale":
        signature = signed(event, timestamp=int(time.time()) - 3600)
    elif tamper == "body-changed":
        event = event.replace('"amount_total": 2500', '"amount_total": 2')
    elif tamper == "missing":
        signature = ""
    elif tamper == "other-api-version":
        event = event.replace(settings.STRIPE_API_VERSION, "2019-01-01")
        signature = signed(event)

    response = post_stripe(owner_client, event, signature)

    assert response.status_code == 400
    assert response.json()["error"]
    assert not PaymentEvent.objects.exists()
    assert balance(org) == 0
    assert TopUp.objects.get(pk=topup.pk).state == TopUp.State.PENDING


def test_it_refuses_to_credit_a_session_whose_amount_differs(
    owner_client: Client, org: Organization, fake_stripe: FakeStripe
) -> None:
    topup = create_topup(owner_client, "25")
    session = fake_stripe.pay(topup.provider_ref)
    session["amount_total"] = 100  # e.g. a coupon the operator did not expect

    post_stripe(owner_client, fake_stripe.event("checkout.session.completed", session))

    assert process_pending() == ["rejected"]
    assert balance(org) == 0
    assert "expected 2500" in PaymentEvent.objects.get().error


def test_it_ignores_sessions_that_are_not_ours(
    owner_client: Client, org: Organization, fake_stripe: FakeStripe
) -> None:
    foreign = {"id": "cs_other", "object": "checkout.session", "payment_status": "paid",
               "client_reference_id": None, "amount_total": 100, "currency": "usd"}  # fmt: skip

    post_stripe(owner_client, fake_stripe.event("checkout.session.completed", foreign))

    assert process_pending() == ["processed"]
    assert balance(org) == 0


def test_it_debits_refunds_by_the_cumulative_amount_once_in_any_order(
    owner_client: Client, org: Organization, fake_stripe: FakeStripe
) -> None:
    topup, event = _paid_topup(owner_client, fake_stripe, "20")
    charge_id = fake_stripe.charge_for(topup.provider_ref)["id"]
    # A refund reported before the completion was processed waits (retried by the task).
    first = fake_stripe.event("charge.refunded", fake_stripe.refund_charge(charge_id, 500))
    post_stripe(owner_client, first)
    assert process_pending() == ["not ready"]

    post_stripe(owner_client, event)
    second = fake_stripe.event("charge.refunded", fake_stripe.refund_charge(charge_id, 500))
    # The second (cumulative 1000) lands before the first (cumulative 500) is retried.
    post_stripe(owner_client, second)
    post_stripe(owner_client, second)
    # Oldest first: the early refund is still not ready (its completion is processed after it).
    assert process_pending() == ["not ready", "processed", "processed"]
    assert process_pending() == ["processed"]  # the task's retry: cumulative 500 < 1000
    assert balance(org) == 20_000_000 - 10_000_000
    refunds = LedgerEntry.objects.filter(kind="refund")
    assert [e.amount for e in refunds] == [-10_000_000]
    assert TopUp.objects.get(pk=topup.pk).refunded_amount == 1000


def test_it_debits_a_dispute_once(
    owner_client: Client, org: Organization, fake_stripe: FakeStripe
) -> None:
    topup, event = _paid_topup(owner_client, fake_stripe, "10")
    post_stripe(owner_client, event)
    dispute = fake_stripe.dispute(fake_stripe.charge_for(topup.provider_ref)["id"])
    payload = fake_stripe.event("charge.dispute.created", dispute)

    post_stripe(owner_client, payload)
    post_stripe(owner_client, fake_stripe.event("charge.dispute.created", dispute))
    process_pending()

    assert balance(org) == 0
    assert LedgerEntry.objects.filter(kind="refund").count() == 1


def test_it_finds_the_payment_of_a_dispute_that_names_only_the_charge(
    owner_client: Client, org: Organization, fake_stripe: FakeStripe
) -> None:
    topup, event = _paid_topup(owner_client, fake_stripe, "10")
    post_stripe(owner_client, event)
    dispute = fake_stripe.dispute(fake_stripe.charge_for(topup.provider_ref)["id"], amount=250)
    dispute["payment_intent"] = None

    post_stripe(owner_client, fake_stripe.event("charge.dispute.created", dispute))
    process_pending()

    assert balance(org) == 10_000_000 - 2_500_000
    assert ("GET", f"/v1/charges/{dispute['charge']}") in [r[:2] for r in fake_stripe.requests]


def test_it_does_not_debit_more_than_was_credited(
    owner_client: Client, org: Organization, fake_stripe: FakeStripe
) -> None:
    topup, event = _paid_topup(owner_client, fake_stripe, "10")
    post_stripe(owner_client, event)
    charge_id = fake_stripe.charge_for(topup.provider_ref)["id"]
    post_stripe(
        owner_client,
        fake_stripe.event("charge.refunded", fake_stripe.refund_charge(charge_id, 1000)),
    )
    post_stripe(
        owner_client, fake_stripe.event("charge.dispute.created", fake_stripe.dispute(charge_id))
    )

    process_pending()

    assert balance(org) == 0


def test_the_recovery_job_credits_a_paid_topup_whose_webhook_never_came(
    owner_client: Client, org: Organization, fake_stripe: FakeStripe
) -> None:
    paid = create_topup(owner_client, "10")
    expired = create_topup(owner_client, "20")
    waiting = create_topup(owner_client, "30")
    fake_stripe.pay(paid.provider_ref)
    fake_stripe.expire(expired.provider_ref)

    counts = topups_recover(older_than_seconds=0)
    again = topups_recover(older_than_seconds=0)

    assert counts == {"paid": 1, "expired": 1, "pending": 1}
    assert again == {"pending": 1}
    assert balance(org) == 10_000_000
    assert TopUp.objects.get(pk=expired.pk).state == TopUp.State.EXPIRED
    assert TopUp.objects.get(pk=waiting.pk).state == TopUp.State.PENDING
    # The webhook arriving late changes nothing.
    post_stripe(
        owner_client,
        fake_stripe.event("checkout.session.completed", fake_stripe.sessions[paid.provider_ref]),
    )
    assert process_pending() == ["processed"]
    assert balance(org) == 10_000_000


def test_it_applies_bonus_tiers_and_the_pricing_group_rate(
    owner_client: Client, org: Organization, fake_stripe: FakeStripe, settings
) -> None:
    from billing.models import PricingGroup

    settings.TOPUP_BONUS_TIERS = ["100:5", "500:10"]
    org.pricing_group = PricingGroup.objects.create(name="vip", topup_rate="0.9")
    org.save()

    topup, event = _paid_topup(owner_client, fake_stripe, "200")
    post_stripe(owner_client, event)
    process_pending()

    assert fake_stripe.sessions[topup.provider_ref]["amount_total"] == 18000  # 200 x 0.9
    assert balance(org) == 210_000_000  # +5% from 100
    assert TopUp.objects.get(pk=topup.pk).bonus == 10_000_000


def test_an_event_is_processed_once_even_when_the_task_runs_twice(
    owner_client: Client, org: Organization, fake_stripe: FakeStripe
) -> None:
    _, event = _paid_topup(owner_client, fake_stripe)
    post_stripe(owner_client, event)
    pk = PaymentEvent.objects.get().pk

    assert payment_event_process(event_pk=pk) == Outcome.PROCESSED
    assert payment_event_process(event_pk=pk) == Outcome.ALREADY
    assert balance(org) == 25_000_000


def test_refunds_and_disputes_of_payments_made_outside_tokenhub_are_ignored(
    owner_client: Client, org: Organization, fake_stripe: FakeStripe
) -> None:
    charge = fake_stripe.foreign_charge(5000)
    post_stripe(
        owner_client,
        fake_stripe.event("charge.refunded", fake_stripe.refund_charge(charge["id"], 5000)),
    )
    post_stripe(
        owner_client, fake_stripe.event("charge.dispute.created", fake_stripe.dispute(charge["id"]))
    )

    assert process_pending() == ["processed", "processed"]
    assert not LedgerEntry.objects.exists()
    assert all(e.error.startswith("ignored") for e in PaymentEvent.objects.all())


def test_the_return_page_asks_stripe_when_the_webhook_is_late(
    owner_client: Client, org: Organization, fake_stripe: FakeStripe
) -> None:
    topup = create_topup(owner_client, "15")
    fake_stripe.pay(topup.provider_ref)

    page = owner_client.get(f"/billing/return/?provider=stripe&topup={topup.pk}")

    assert "Thank you" in page.content.decode()
    assert balance(org) == 15_000_000


def test_an_admin_refund_asks_stripe_and_the_webhook_debits(
    owner_client: Client, org: Organization, fake_stripe: FakeStripe, admin_client: Client
) -> None:
    topup, event = _paid_topup(owner_client, fake_stripe, "10")
    post_stripe(owner_client, event)
    process_pending()
    topup.refresh_from_db()

    response = admin_client.post(
        "/admin/billing/topup/",
        {"action": "refund_at_provider", "_selected_action": [str(topup.pk)]},
        follow=True,
    )

    assert "refund re_test_" in response.content.decode()
    [refund] = fake_stripe.refunds
    assert (refund["payment_intent"], refund["amount"]) == (topup.provider_payment_id, 1000)
    assert balance(org) == 10_000_000  # not until Stripe confirms
    charge = fake_stripe.refund_charge(fake_stripe.charge_for(topup.provider_ref)["id"], 1000)
    post_stripe(owner_client, fake_stripe.event("charge.refunded", charge))
    process_pending()
    assert balance(org) == 0


def test_webhooks_need_no_csrf_token(
    org: Organization, fake_stripe: FakeStripe, owner_client: Client
) -> None:
    _, event = _paid_topup(owner_client, fake_stripe)

    response = post_stripe(Client(enforce_csrf_checks=True), event)

    assert response.status_code == 200


def test_a_manage_key_can_start_a_topup(
    owner: User, fake_stripe: FakeStripe, make_key: MakeKey, client: Client
) -> None:
    _, secret = make_key(owner, scopes=["manage"])

    response = client.post(
        "/api/v1/topups",
        data=json.dumps({"amount_usd": "25", "provider": "stripe"}),
        content_type="application/json",
        headers={"Authorization": f"Bearer {secret}"},
    )
    listing = client.get("/api/v1/topups", headers={"Authorization": f"Bearer {secret}"})

    assert response.status_code == 201
    assert [t["id"] for t in listing.json()["data"]] == [response.json()["id"]]


def test_members_without_billing_rights_cannot_start_topups(
    teammate: User, org: Organization, fake_stripe: FakeStripe, client: Client
) -> None:
    client.force_login(teammate)
    session = client.session
    session["active_org_id"] = org.pk
    session.save()

    response = client.post(
        "/api/v1/topups",
        data=json.dumps({"amount_usd": "25", "provider": "stripe"}),
        content_type="application/json",
    )

    assert response.status_code == 403
    assert not TopUp.objects.exists()


def test_an_expired_session_closes_its_topup_and_a_late_payment_still_credits(
    owner_client: Client, org: Organization, fake_stripe: FakeStripe
) -> None:
    topup = create_topup(owner_client, "10")
    fake_stripe.expire(topup.provider_ref)
    post_stripe(
        owner_client,
        fake_stripe.event("checkout.session.expired", fake_stripe.sessions[topup.provider_ref]),
    )
    process_pending()
    assert TopUp.objects.get(pk=topup.pk).state == TopUp.State.EXPIRED

    # Money that arrives is never ignored, whatever the top-up's state.
    post_stripe(
        owner_client,
        fake_stripe.event("checkout.session.completed", fake_stripe.pay(topup.provider_ref)),
    )
    process_pending()

    assert TopUp.objects.get(pk=topup.pk).state == TopUp.State.PAID
    assert balance(org) == 10_000_000
