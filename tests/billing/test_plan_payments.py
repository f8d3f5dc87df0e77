"""Plan payments: every paid Stripe invoice of a subscription (first period, renewal,
proration), the demo provider's checkout and renewals each record one PlanPayment, once
however often the event is delivered; plans granted by code or by staff record none."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper

from accounts.models import Organization
from billing.models import Plan, PlanPayment, Subscription
from billing.plan_payments import plan_payment_record
from billing.providers import demo as demo_provider
from billing.subscriptions import (
    period_end_after,
    subscription_grant,
    subscription_start,
    subscriptions_demo_renew,
)
from tests.billing.conftest import post_stripe, process_pending
from tests.billing.test_subscriptions import make_plan
from tests.billing.test_subscriptions_stripe import _checkout, _subscribed
from tests.fakes.stripe_api import FakeStripe

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]


@pytest.fixture
def pro(db: None) -> Plan:
    return make_plan("coding-pro")


def _at(timestamp: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC)


def _line_period(invoice: dict[str, Any]) -> tuple[dt.datetime, dt.datetime]:
    period = invoice["lines"]["data"][0]["period"]
    return _at(period["start"]), _at(period["end"])


def test_the_first_invoice_and_each_renewal_are_recorded_once(
    owner_client: Client, org: Organization, pro: Plan, fake_stripe: FakeStripe
) -> None:
    _, sub, first = _subscribed(owner_client, fake_stripe, pro)
    renewal = fake_stripe.renew(sub["id"])
    renewal["status_transitions"] = {"paid_at": renewal["lines"]["data"][0]["period"]["start"]}
    event = fake_stripe.event("invoice.paid", renewal)

    post_stripe(owner_client, event)
    post_stripe(owner_client, event)  # the same event delivered twice
    post_stripe(owner_client, fake_stripe.event("invoice.paid", renewal))  # a new event id
    post_stripe(owner_client, fake_stripe.event("invoice.paid", first))  # the first, late
    assert process_pending() == ["processed"] * 3

    ours = Subscription.objects.get(provider="stripe", provider_ref=sub["id"])
    payments = list(PlanPayment.objects.order_by("period_start"))
    assert [p.provider_ref for p in payments] == [first["id"], renewal["id"]]
    assert all(
        (p.provider, p.subscription_id, p.organization_id, p.amount, p.currency)
        == ("stripe", ours.pk, org.pk, 2000, "usd")
        for p in payments
    )
    assert [(p.period_start, p.period_end) for p in payments] == [
        _line_period(first),
        _line_period(renewal),
    ]
    assert payments[1].paid_at == _line_period(renewal)[0]
    assert (ours.current_period_start, ours.current_period_end) == _line_period(renewal)


def test_the_proration_of_a_plan_change_is_a_payment_too(
    owner_client: Client, org: Organization, pro: Plan, fake_stripe: FakeStripe
) -> None:
    bigger = make_plan("coding-max", price=10_000, month_limit=800_000_000)
    _, sub, _ = _subscribed(owner_client, fake_stripe, pro)
    response = owner_client.post("/dashboard/billing/plan/change/", {"plan": bigger.pk})
    assert response.status_code == 302
    proration = fake_stripe.invoices[fake_stripe.subscription(sub["id"])["latest_invoice"]]

    post_stripe(owner_client, fake_stripe.event("invoice.paid", proration))
    assert process_pending() == ["processed"]

    payment = PlanPayment.objects.get(provider_ref=proration["id"])
    assert payment.amount == proration["amount_paid"]
    assert PlanPayment.objects.count() == 2


def test_a_failed_invoice_records_nothing_until_it_is_paid(
    owner_client: Client, org: Organization, pro: Plan, fake_stripe: FakeStripe
) -> None:
    _, sub, _ = _subscribed(owner_client, fake_stripe, pro)
    unpaid = fake_stripe.renew(sub["id"], paid=False)

    post_stripe(owner_client, fake_stripe.event("invoice.payment_failed", unpaid))
    process_pending()
    assert not PlanPayment.objects.filter(provider_ref=unpaid["id"]).exists()

    post_stripe(
        owner_client, fake_stripe.event("invoice.paid", fake_stripe.pay_invoice(unpaid["id"]))
    )
    process_pending()
    assert PlanPayment.objects.get(provider_ref=unpaid["id"]).amount == 2000


def test_an_invoice_of_a_subscription_that_is_not_ours_records_nothing(
    owner_client: Client, pro: Plan, fake_stripe: FakeStripe
) -> None:
    _, sub, invoice = fake_stripe.subscribe(_checkout(owner_client, fake_stripe, pro)["id"])
    fake_stripe.subscriptions[sub["id"]]["metadata"] = {}  # made outside TokenHub

    post_stripe(owner_client, fake_stripe.event("invoice.paid", invoice))

    assert process_pending() == ["processed"]
    assert not PlanPayment.objects.exists()


def test_the_demo_checkout_records_its_payment_once(
    owner_client: Client, org: Organization, pro: Plan, settings: SettingsWrapper
) -> None:
    settings.PAYMENTS_DEMO = True
    settings.SITE_URL = "http://testserver"
    response = owner_client.post(
        "/dashboard/billing/plan/subscribe/", {"plan": pro.pk, "provider": "demo"}
    )
    ref = response["Location"].rstrip("/").rsplit("/", 1)[1]
    paid = demo_provider.plan_event_for(ref, pro, demo_provider.PAID)

    for _ in range(2):  # the second post is a replay of the same signed event
        assert owner_client.post(f"/billing/demo/plan/{ref}/event", paid).status_code == 302

    payment = PlanPayment.objects.get()
    subscription = Subscription.objects.get(provider="demo", provider_ref=ref)
    assert (payment.provider, payment.provider_ref, payment.amount, payment.currency) == (
        "demo",
        ref,
        2000,
        "usd",
    )
    assert payment.subscription_id == subscription.pk
    assert (payment.period_start, payment.period_end) == (
        subscription.current_period_start,
        subscription.current_period_end,
    )


def test_each_demo_renewal_is_a_payment_and_a_rerun_adds_none(org: Organization, pro: Plan) -> None:
    start = dt.datetime(2027, 1, 10, 12, tzinfo=dt.UTC)
    subscription_start(
        organization=org,
        plan=pro,
        provider="demo",
        provider_ref="demoplan_x",
        period_start=start,
        period_end=period_end_after(start, "month"),
    )
    later = dt.datetime(2027, 3, 20, tzinfo=dt.UTC)  # two periods ran out

    assert subscriptions_demo_renew(now=later) == 1
    assert subscriptions_demo_renew(now=later) == 0

    periods = list(
        PlanPayment.objects.order_by("period_start").values_list("period_start", "period_end")
    )
    assert periods == [
        (dt.datetime(2027, 2, 10, 12, tzinfo=dt.UTC), dt.datetime(2027, 3, 10, 12, tzinfo=dt.UTC)),
        (dt.datetime(2027, 3, 10, 12, tzinfo=dt.UTC), dt.datetime(2027, 4, 10, 12, tzinfo=dt.UTC)),
    ]
    assert set(PlanPayment.objects.values_list("amount", "provider")) == {(2000, "demo")}


def test_plans_granted_by_code_or_staff_are_not_payments(org: Organization, pro: Plan) -> None:
    subscription_grant(organization=org, plan=pro, days=30, provider="code")
    subscription_grant(organization=org, plan=pro, days=10, provider="admin")

    assert not PlanPayment.objects.exists()


def test_recording_is_idempotent_per_provider_reference(org: Organization, pro: Plan) -> None:
    now = dt.datetime.fromtimestamp(int(time.time()), dt.UTC)
    sub = subscription_start(
        organization=org,
        plan=pro,
        provider="stripe",
        provider_ref="sub_1",
        period_start=now,
        period_end=now + dt.timedelta(days=30),
    )
    kwargs: dict[str, Any] = {
        "subscription": sub,
        "provider": "stripe",
        "provider_ref": "in_1",
        "currency": "USD",
        "period_start": now,
        "period_end": now + dt.timedelta(days=30),
    }

    first, created = plan_payment_record(amount=2000, **kwargs)
    again, created_again = plan_payment_record(amount=9999, **kwargs)

    assert created and not created_again
    assert again.pk == first.pk and again.amount == 2000 and again.currency == "usd"
    with pytest.raises(ValueError, match="reference"):
        plan_payment_record(amount=1, **(kwargs | {"provider_ref": ""}))
