"""Concurrent webhook deliveries, task runs, recovery runs and EPay notifies credit once
(PostgreSQL), and the webhook's task really runs on a Celery worker over Redis."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from django.db import connection
from django.test import Client

from accounts.models import Organization
from billing.events import payment_event_process, process_payment_event
from billing.models import LedgerEntry, PaymentEvent, TopUp
from billing.topups import topup_recover
from tests.billing.conftest import balance, create_topup, post_stripe
from tests.fakes.stripe_api import FakeStripe
from tests.test_celery_worker import _until, worker

__all__ = ["worker"]  # the fixture, imported for the worker test below

pytestmark = pytest.mark.django_db(transaction=True)

THREADS = 12


def _together(work: Callable[[int], None], threads: int = THREADS) -> None:
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            barrier.wait()
            work(n)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    pool = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert not errors, errors


@pytest.mark.postgres
def test_concurrent_deliveries_and_task_runs_credit_once(
    owner_client: Client,
    org: Organization,
    fake_stripe: FakeStripe,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("row-lock concurrency is only meaningful on PostgreSQL")
    queued: list[int] = []
    monkeypatch.setattr(process_payment_event, "delay", queued.append)
    topup = create_topup(owner_client, "25")
    session = fake_stripe.pay(topup.provider_ref)
    events = [
        fake_stripe.event("checkout.session.completed", session),
        fake_stripe.event("checkout.session.async_payment_succeeded", session),
    ]
    cookies = owner_client.cookies

    def deliver(n: int) -> None:
        client = Client()
        client.cookies = cookies
        assert post_stripe(client, events[n % 2]).status_code == 200

    _together(deliver)
    assert PaymentEvent.objects.count() == 2
    pks = sorted(set(queued))
    assert len(pks) == 2

    def process(n: int) -> None:
        payment_event_process(event_pk=pks[n % 2])

    _together(process)

    assert balance(org) == 25_000_000
    assert LedgerEntry.objects.filter(kind="topup").count() == 1
    assert TopUp.objects.get(pk=topup.pk).state == TopUp.State.PAID
    assert not PaymentEvent.objects.filter(processed_at__isnull=True).exists()


def test_the_webhook_task_runs_on_a_real_worker(
    worker: None, owner_client: Client, org: Organization, fake_stripe: FakeStripe
) -> None:
    topup = create_topup(owner_client, "12.50")
    session = fake_stripe.pay(topup.provider_ref)

    response = post_stripe(owner_client, fake_stripe.event("checkout.session.completed", session))

    assert response.status_code == 200
    _until(lambda: balance(org) == 12_500_000)
    _until(lambda: PaymentEvent.objects.filter(processed_at__isnull=False).exists())
    assert TopUp.objects.get(pk=topup.pk).state == TopUp.State.PAID


@pytest.mark.postgres
def test_the_recovery_job_racing_the_webhook_credits_once(
    owner_client: Client,
    org: Organization,
    fake_stripe: FakeStripe,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("row-lock concurrency is only meaningful on PostgreSQL")
    monkeypatch.setattr(process_payment_event, "delay", lambda pk: None)
    topup = create_topup(owner_client, "30")
    post_stripe(
        owner_client,
        fake_stripe.event("checkout.session.completed", fake_stripe.pay(topup.provider_ref)),
    )
    event_pk = PaymentEvent.objects.get().pk

    def work(n: int) -> None:
        if n % 2:
            payment_event_process(event_pk=event_pk)
        else:
            topup_recover(topup=TopUp.objects.get(pk=topup.pk))

    _together(work, threads=8)

    assert balance(org) == 30_000_000
    assert LedgerEntry.objects.filter(kind="topup").count() == 1


@pytest.mark.postgres
def test_concurrent_epay_notifies_credit_once(
    owner_client: Client, org: Organization, epay: None
) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("row-lock concurrency is only meaningful on PostgreSQL")
    from tests.billing.test_epay import _notify

    topup = create_topup(owner_client, "10", provider="epay")
    params = _notify(topup)
    replies: list[bytes] = []

    def notify(n: int) -> None:
        replies.append(Client().get("/billing/webhooks/epay/", params).content)

    _together(notify)

    assert replies == [b"success"] * THREADS
    assert balance(org) == 10_000_000
    assert LedgerEntry.objects.filter(kind="topup").count() == 1
