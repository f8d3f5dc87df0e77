"""Stripe subscriptions end to end: the billing page's buttons through the official client
to the loopback stub of Stripe's API, and genuinely signed webhooks posted to the real
endpoint, delivered twice, out of order, late and forged."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from django.test import Client

from accounts.access import ACTIVE_ORG_SESSION_KEY
from accounts.models import Membership, Organization, User
from accounts.services import user_create
from billing.models import PaymentEvent, Plan, Subscription
from billing.providers.stripe import plan_product_id
from billing.subscriptions import subscriptions_expire_lapsed
from tests.billing.conftest import post_stripe, process_pending
from tests.billing.test_subscriptions import actions, make_plan
from tests.fakes.stripe_api import FakeStripe, signed

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]


@pytest.fixture
def pro(db: None) -> Plan:
    return make_plan("coding-pro")


@pytest.fixture
def max_plan(db: None) -> Plan:
    return make_plan("coding-max", price=10_000, month_limit=800_000_000)


def _at(timestamp: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC)


def _checkout(client: Client, fake: FakeStripe, plan: Plan) -> dict[str, Any]:
    """Subscribe on the billing page; returns the Checkout Session Stripe created."""
    response = client.post(
        "/dashboard/billing/plan/subscribe/", {"plan": plan.pk, "provider": "stripe"}
    )
    assert response.status_code == 302, response.content
    session = next(s for s in fake.sessions.values() if s["url"] == response["Location"])
    return session


def _subscribed(
    client: Client, fake: FakeStripe, plan: Plan
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Checkout paid and its two events (completed, first invoice) applied."""
    session, sub, invoice = fake.subscribe(_checkout(client, fake, plan)["id"])
    for event in (
        fake.event("checkout.session.completed", session),
        fake.event("invoice.paid", invoice),
    ):
        assert post_stripe(client, event).status_code == 200
    assert process_pending() == ["processed", "processed"]
    return session, sub, invoice


def _ours(sub: dict[str, Any]) -> Subscription:
    return Subscription.objects.get(provider="stripe", provider_ref=sub["id"])


def _period(sub: dict[str, Any]) -> tuple[dt.datetime, dt.datetime]:
    item = sub["items"]["data"][0]
    return _at(item["current_period_start"]), _at(item["current_period_end"])


def test_the_checkout_is_a_subscription_priced_from_the_plan(
    owner_client: Client, org: Organization, owner: User, pro: Plan, fake_stripe: FakeStripe
) -> None:
    session = _checkout(owner_client, fake_stripe, pro)

    price = session["line_items_params"]["price_data"]
    assert session["mode"] == "subscription"
    assert price == {
        "currency": "usd",
        "unit_amount": "2000",
        "recurring": {"interval": "month"},
        "product": plan_product_id(pro.pk),
    }
    metadata = {"organization_id": str(org.pk), "plan_id": str(pro.pk)}
    assert session["subscription_data"]["metadata"] == metadata == session["metadata"]
    assert session["customer_email"] == owner.email
    assert fake_stripe.products[plan_product_id(pro.pk)]["name"] == "Coding Pro"
    assert not Subscription.objects.exists()  # nothing before Stripe confirms

    _checkout(owner_client, fake_stripe, pro)  # the product exists now: reused
    assert len(fake_stripe.products) == 1


def test_a_paid_checkout_starts_the_plan_once_however_often_it_is_delivered(
    owner_client: Client, org: Organization, pro: Plan, fake_stripe: FakeStripe
) -> None:
    session, sub, invoice = fake_stripe.subscribe(_checkout(owner_client, fake_stripe, pro)["id"])
    events = [
        fake_stripe.event("checkout.session.completed", session),
        fake_stripe.event("invoice.paid", invoice),
    ]

    for event in events * 3:  # Stripe retries; an attacker replays a captured body
        assert post_stripe(owner_client, event).status_code == 200
    assert PaymentEvent.objects.count() == 2
    assert process_pending() == ["processed", "processed"]

    ours = _ours(sub)
    assert (ours.organization, ours.plan, ours.status) == (org, pro, "active")
    assert (ours.current_period_start, ours.current_period_end) == _period(sub)
    assert actions(org) == ["started"]
    errors = list(PaymentEvent.objects.order_by("pk").values_list("error", flat=True))
    assert errors == ["", ""]


def test_the_first_invoice_arriving_before_the_checkout_starts_the_plan_too(
    owner_client: Client, org: Organization, pro: Plan, fake_stripe: FakeStripe
) -> None:
    session, sub, invoice = fake_stripe.subscribe(_checkout(owner_client, fake_stripe, pro)["id"])

    post_stripe(owner_client, fake_stripe.event("invoice.paid", invoice))
    assert process_pending() == ["processed"]
    post_stripe(owner_client, fake_stripe.event("checkout.session.completed", session))
    assert process_pending() == ["processed"]

    assert Subscription.objects.get() == _ours(sub)
    assert actions(org) == ["started"]


def test_renewals_move_the_period_on_and_a_late_old_invoice_does_not_move_it_back(
    owner_client: Client, org: Organization, pro: Plan, fake_stripe: FakeStripe
) -> None:
    _, sub, first_invoice = _subscribed(owner_client, fake_stripe, pro)
    second = fake_stripe.renew(sub["id"])
    third = fake_stripe.renew(sub["id"])

    post_stripe(owner_client, fake_stripe.event("invoice.paid", third))
    post_stripe(owner_client, fake_stripe.event("invoice.paid", second))  # out of order
    # The first period's invoice again, as a new delivery (another event id).
    post_stripe(owner_client, fake_stripe.event("invoice.paid", first_invoice))
    assert process_pending() == ["processed"] * 3

    ours = _ours(sub)
    assert (ours.current_period_start, ours.current_period_end) == _period(
        fake_stripe.subscription(sub["id"])
    )
    assert actions(org) == ["started", "renewed"]


def test_a_failed_renewal_is_past_due_with_grace_until_the_retry_pays(
    owner_client: Client, org: Organization, pro: Plan, fake_stripe: FakeStripe
) -> None:
    _, sub, _ = _subscribed(owner_client, fake_stripe, pro)
    paid_until = _ours(sub).current_period_end
    unpaid = fake_stripe.renew(sub["id"], paid=False)

    post_stripe(owner_client, fake_stripe.event("invoice.payment_failed", unpaid))
    post_stripe(owner_client, fake_stripe.event("invoice.payment_failed", unpaid))  # 2nd attempt
    assert process_pending() == ["processed", "processed"]
    ours = _ours(sub)
    assert ours.status == "past_due" and ours.current_period_end == paid_until
    assert ours.grace_until is not None
    page = owner_client.get("/dashboard/billing/").content.decode()
    assert "Past due" in page and "The last payment for this plan failed" in page

    paid = fake_stripe.pay_invoice(unpaid["id"])
    post_stripe(owner_client, fake_stripe.event("invoice.paid", paid))
    # The failure of an earlier attempt, delivered after the success.
    post_stripe(owner_client, fake_stripe.event("invoice.payment_failed", unpaid))
    assert process_pending() == ["processed", "processed"]

    ours.refresh_from_db()
    assert ours.status == "active" and not ours.grace_until
    assert ours.current_period_end > paid_until
    assert actions(org) == ["started", "payment_failed", "renewed"]


def test_cancel_at_period_end_and_resume_go_through_stripe(
    owner_client: Client, org: Organization, pro: Plan, fake_stripe: FakeStripe
) -> None:
    _, sub, _ = _subscribed(owner_client, fake_stripe, pro)

    response = owner_client.post("/dashboard/billing/plan/cancel/", follow=True)

    assert fake_stripe.subscription(sub["id"])["cancel_at_period_end"] is True
    assert _ours(sub).cancel_at_period_end
    assert "does not renew" in response.content.decode()
    # Stripe's own report of the change is applied once more: nothing changes.
    post_stripe(
        owner_client,
        fake_stripe.event("customer.subscription.updated", fake_stripe.subscription(sub["id"])),
    )
    assert process_pending() == ["processed"]

    owner_client.post("/dashboard/billing/plan/resume/")

    assert fake_stripe.subscription(sub["id"])["cancel_at_period_end"] is False
    assert not _ours(sub).cancel_at_period_end
    assert actions(org) == ["started", "cancel_at_period_end", "resumed"]


def test_a_plan_change_asks_stripe_and_applies_when_stripe_reports_it(
    owner_client: Client, org: Organization, pro: Plan, max_plan: Plan, fake_stripe: FakeStripe
) -> None:
    _, sub, _ = _subscribed(owner_client, fake_stripe, pro)
    stale = fake_stripe.subscription(sub["id"])  # still on Pro

    response = owner_client.post("/dashboard/billing/plan/change/", {"plan": max_plan.pk})

    assert response.status_code == 302
    update = fake_stripe.bodies[-1]
    assert update["proration_behavior"] == "always_invoice"
    assert update["payment_behavior"] == "pending_if_incomplete"
    assert update["items"]["0"]["price_data"]["product"] == plan_product_id(max_plan.pk)
    assert update["items"]["0"]["price_data"]["unit_amount"] == "10000"
    assert _ours(sub).plan == pro  # until Stripe says so
    changed = fake_stripe.subscription(sub["id"])
    proration = fake_stripe.invoices[changed["latest_invoice"]]

    post_stripe(owner_client, fake_stripe.event("customer.subscription.updated", changed))
    post_stripe(owner_client, fake_stripe.event("invoice.paid", proration))
    # An older update, delivered last: Stripe's current state wins, not the stale copy.
    post_stripe(owner_client, fake_stripe.event("customer.subscription.updated", stale))
    assert process_pending() == ["processed"] * 3

    ours = _ours(sub)
    assert ours.plan == max_plan
    assert (ours.current_period_start, ours.current_period_end) == _period(changed)
    assert actions(org) == ["started", "plan_change_requested", "plan_changed"]


def test_a_deleted_subscription_is_not_resurrected_by_stale_events(
    owner_client: Client, org: Organization, pro: Plan, fake_stripe: FakeStripe
) -> None:
    _, sub, invoice = _subscribed(owner_client, fake_stripe, pro)
    live = fake_stripe.subscription(sub["id"])
    ended = fake_stripe.end(sub["id"])

    post_stripe(owner_client, fake_stripe.event("customer.subscription.deleted", ended))
    post_stripe(owner_client, fake_stripe.event("customer.subscription.updated", live))
    post_stripe(owner_client, fake_stripe.event("invoice.paid", invoice))
    assert process_pending() == ["processed"] * 3

    assert _ours(sub).status == "expired"
    assert actions(org) == ["started", "ended"]
    assert "Subscribe" in owner_client.get("/dashboard/billing/").content.decode()


def test_a_renewal_paid_after_the_grace_ran_out_brings_the_plan_back(
    owner_client: Client, org: Organization, pro: Plan, fake_stripe: FakeStripe
) -> None:
    _, sub, _ = _subscribed(owner_client, fake_stripe, pro)
    ours = _ours(sub)
    assert subscriptions_expire_lapsed(now=ours.current_period_end + dt.timedelta(days=4)) == 1
    unpaid = fake_stripe.renew(sub["id"], paid=False)

    post_stripe(
        owner_client, fake_stripe.event("invoice.paid", fake_stripe.pay_invoice(unpaid["id"]))
    )
    assert process_pending() == ["processed"]

    ours.refresh_from_db()
    assert ours.status == "active"
    assert actions(org) == ["started", "ended", "reactivated"]


def test_a_second_paid_checkout_is_recorded_as_rejected_for_the_operator(
    owner_client: Client, org: Organization, pro: Plan, fake_stripe: FakeStripe
) -> None:
    first = _checkout(owner_client, fake_stripe, pro)  # two tabs, both paid
    second = _checkout(owner_client, fake_stripe, pro)
    for session_id in (first["id"], second["id"]):
        session, _, _ = fake_stripe.subscribe(session_id)
        post_stripe(owner_client, fake_stripe.event("checkout.session.completed", session))

    assert process_pending() == ["processed", "rejected"]
    assert Subscription.objects.filter(status="active").count() == 1
    last = PaymentEvent.objects.order_by("pk").last()
    assert last is not None and "already pays for subscription" in last.error


@pytest.mark.parametrize(
    "forge",
    [
        lambda body: signed(body, secret="whsec_someone_else"),
        lambda body: signed(body, timestamp=1_000_000),  # a replay of an old delivery
        lambda body: "t=1,v1=" + "0" * 64,
    ],
)
def test_a_forged_subscription_event_is_refused_and_changes_nothing(
    owner_client: Client, org: Organization, pro: Plan, fake_stripe: FakeStripe, forge: Any
) -> None:
    _, sub, _ = _subscribed(owner_client, fake_stripe, pro)
    ended = fake_stripe.event("customer.subscription.deleted", fake_stripe.end(sub["id"]))
    events_before = PaymentEvent.objects.count()

    response = post_stripe(owner_client, ended, signature=forge(ended))
    tampered = ended.replace('"canceled"', '"active"')
    altered = post_stripe(owner_client, tampered, signature=signed(ended))

    assert response.status_code == altered.status_code == 400
    assert PaymentEvent.objects.count() == events_before
    assert _ours(sub).status == "active"


def test_the_return_page_applies_a_completed_checkout_at_once(
    owner_client: Client, org: Organization, pro: Plan, fake_stripe: FakeStripe
) -> None:
    session, sub, _ = fake_stripe.subscribe(_checkout(owner_client, fake_stripe, pro)["id"])

    page = owner_client.get(f"/billing/return/?provider=stripe&plan_session={session['id']}")

    assert "Your Coding Pro plan is active until" in page.content.decode()
    assert _ours(sub).status == "active"


def test_the_return_page_does_not_apply_another_organizations_checkout(
    owner_client: Client, pro: Plan, fake_stripe: FakeStripe
) -> None:
    session, _, _ = fake_stripe.subscribe(_checkout(owner_client, fake_stripe, pro)["id"])
    stranger = Client()
    stranger.force_login(user_create(email="s@example.com", password="pw-123456789"))

    page = stranger.get(f"/billing/return/?provider=stripe&plan_session={session['id']}")

    assert "Confirming your subscription" in page.content.decode()
    assert not Subscription.objects.exists()


def test_only_owners_and_billing_members_act_on_the_plan(
    org: Organization, teammate: User, pro: Plan, fake_stripe: FakeStripe
) -> None:
    client = Client()
    client.force_login(teammate)  # a member of the owner's organization
    session = client.session
    session[ACTIVE_ORG_SESSION_KEY] = org.pk
    session.save()

    for path in ("subscribe/", "cancel/", "resume/", "change/"):
        response = client.post(f"/dashboard/billing/plan/{path}", {"plan": pro.pk})
        assert response.status_code == 403
    assert not fake_stripe.sessions

    Membership.objects.filter(user=teammate).update(role=Membership.Role.BILLING)
    response = client.post(
        "/dashboard/billing/plan/subscribe/", {"plan": pro.pk, "provider": "stripe"}
    )
    assert response.status_code == 302 and len(fake_stripe.sessions) == 1


def test_a_customer_with_a_paid_plan_changes_it_rather_than_subscribing_again(
    owner_client: Client, pro: Plan, max_plan: Plan, fake_stripe: FakeStripe
) -> None:
    _subscribed(owner_client, fake_stripe, pro)
    sessions = len(fake_stripe.sessions)

    response = owner_client.post(
        "/dashboard/billing/plan/subscribe/",
        {"plan": max_plan.pk, "provider": "stripe"},
        follow=True,
    )

    assert "change it instead" in response.content.decode()
    assert len(fake_stripe.sessions) == sessions


def test_an_unknown_stripe_subscription_is_ignored(
    owner_client: Client, fake_stripe: FakeStripe
) -> None:
    foreign = {"id": "sub_elsewhere", "object": "subscription", "status": "active"}

    post_stripe(owner_client, fake_stripe.event("customer.subscription.deleted", foreign))
    body = json.loads(fake_stripe.event("invoice.payment_failed", {"id": "in_1", "lines": {}}))
    post_stripe(owner_client, json.dumps(body))

    assert process_pending() == ["processed", "processed"]
    assert not Subscription.objects.exists()


def test_staff_cancel_a_stripe_subscription_there_too(
    owner_client: Client, admin_user: User, org: Organization, pro: Plan, fake_stripe: FakeStripe
) -> None:
    _, sub, _ = _subscribed(owner_client, fake_stripe, pro)
    staff = Client()
    staff.force_login(admin_user)

    staff.post(
        "/admin/billing/subscription/",
        {"action": "cancel_now", "_selected_action": [_ours(sub).pk]},
    )
    post_stripe(
        owner_client,
        fake_stripe.event("customer.subscription.deleted", fake_stripe.subscription(sub["id"])),
    )
    assert process_pending() == ["processed"]

    assert fake_stripe.requests[-1][:2] == ("DELETE", f"/v1/subscriptions/{sub['id']}")
    assert fake_stripe.subscription(sub["id"])["status"] == "canceled"
    assert _ours(sub).status == "canceled"
    assert actions(org) == ["started", "ended"]
