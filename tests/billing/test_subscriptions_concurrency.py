"""Subscriptions under concurrency (PostgreSQL): the events of one checkout applied by
many workers at once start one subscription; two paid checkouts of one organization
start one; codes redeemed at once each extend the plan exactly once."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import Client

from accounts.models import Organization, User
from billing.codes import code_redeem, redemption_batch_create
from billing.events import payment_event_process, process_payment_event
from billing.models import PaymentEvent, Subscription
from tests.billing.conftest import post_stripe
from tests.billing.test_payment_concurrency import THREADS, _together
from tests.billing.test_subscriptions import make_plan
from tests.fakes.stripe_api import FakeStripe

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]


@pytest.fixture(autouse=True)
def _postgres_only() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("row-lock concurrency is only meaningful on PostgreSQL")


def test_one_checkouts_events_applied_at_once_start_one_subscription(
    owner_client: Client,
    org: Organization,
    fake_stripe: FakeStripe,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(process_payment_event, "delay", lambda pk: None)
    plan = make_plan()
    owner_client.post("/dashboard/billing/plan/subscribe/", {"plan": plan.pk, "provider": "stripe"})
    session, sub, invoice = fake_stripe.subscribe(next(iter(fake_stripe.sessions)))
    renewal = fake_stripe.renew(sub["id"])
    for body in (
        fake_stripe.event("checkout.session.completed", session),
        fake_stripe.event("invoice.paid", invoice),
        fake_stripe.event("customer.subscription.updated", fake_stripe.subscription(sub["id"])),
        fake_stripe.event("invoice.paid", renewal),
    ):
        assert post_stripe(owner_client, body).status_code == 200
    pks = list(PaymentEvent.objects.order_by("pk").values_list("pk", flat=True))

    def process(n: int) -> None:
        payment_event_process(event_pk=pks[n % len(pks)])

    _together(process)

    ours = Subscription.objects.get()
    assert (ours.organization, ours.status, ours.provider_ref) == (org, "active", sub["id"])
    end = renewal["lines"]["data"][0]["period"]["end"]
    assert ours.current_period_end == dt.datetime.fromtimestamp(end, dt.UTC)
    assert not PaymentEvent.objects.filter(processed_at__isnull=True).exists()


def test_two_paid_checkouts_at_once_start_one_subscription(
    owner_client: Client, org: Organization, fake_stripe: FakeStripe
) -> None:
    plan = make_plan()
    for _ in range(2):
        owner_client.post(
            "/dashboard/billing/plan/subscribe/", {"plan": plan.pk, "provider": "stripe"}
        )
    for session_id in list(fake_stripe.sessions):
        session, _, _ = fake_stripe.subscribe(session_id)
        post_stripe(owner_client, fake_stripe.event("checkout.session.completed", session))
    events = list(PaymentEvent.objects.values_list("pk", flat=True))

    def process(n: int) -> None:
        payment_event_process(event_pk=events[n])

    _together(process, threads=2)

    assert Subscription.objects.filter(status__in=["active", "past_due"]).count() == 1
    assert PaymentEvent.objects.exclude(error="").count() == 1


def test_codes_redeemed_at_once_each_extend_the_plan_once(owner: User, org: Organization) -> None:
    cache.clear()
    plan = make_plan()
    codes = redemption_batch_create(
        name="x", count=THREADS, amount=0, plan=plan, plan_days=10
    ).codes

    def redeem(n: int) -> None:
        code_redeem(raw_code=codes[n], user=owner, organization=org, ip="203.0.113.9")

    _together(redeem)

    sub = Subscription.objects.get()
    days = (sub.current_period_end - sub.current_period_start).total_seconds() / 86400
    assert THREADS * 10 <= days < THREADS * 10 + 1
