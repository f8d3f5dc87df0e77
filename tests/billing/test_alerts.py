"""Low-balance alerts: one email when the balance crosses below the threshold (not one per
request or per check), re-armed once the balance is back above it."""

from __future__ import annotations

import pytest
from django.core import mail

from accounts.models import Membership, Organization, User
from accounts.services import user_create
from billing.alerts import low_balance_check, low_balance_set, send_low_balance_email
from billing.models import LowBalanceAlert, Wallet
from billing.services import wallet_adjust
from billing.tasks import low_balance_check as low_balance_check_task
from tests.test_celery_worker import _until, worker

__all__ = ["worker"]

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]


@pytest.fixture
def run_emails(monkeypatch: pytest.MonkeyPatch) -> None:
    """Queued emails run in-process (the worker path is tested below)."""
    monkeypatch.setattr(
        send_low_balance_email, "delay", lambda pk: send_low_balance_email.apply(args=(pk,))
    )


def _move(org: Organization, usd: int) -> None:
    wallet_adjust(organization=org, amount=usd * 1_000_000, reason="test", created_by=None)


def test_it_emails_once_per_crossing_and_rearms_after_a_topup(
    org: Organization, owner: User, teammate: User, run_emails: None,
    django_capture_on_commit_callbacks,
) -> None:  # fmt: skip
    accountant = user_create(email="books@example.com")
    Membership.objects.create(user=accountant, organization=org, role=Membership.Role.BILLING)
    _move(org, 10)
    low_balance_set(organization=org, threshold=5_000_000)

    with django_capture_on_commit_callbacks(execute=True):
        assert low_balance_check() == []
        _move(org, -6)
        first = low_balance_check()
        _move(org, -1)
        second = low_balance_check()

    assert len(first) == 1 and second == []
    assert len(mail.outbox) == 1
    email = mail.outbox[0]
    assert sorted(email.to) == ["books@example.com", "owner@example.com"]  # not the member
    assert "3.000000 USD" in email.body and "5.000000 USD" in email.body  # balance when sent

    with django_capture_on_commit_callbacks(execute=True):
        _move(org, 20)
        assert low_balance_check() == []
        assert LowBalanceAlert.objects.get().alerted_at is None  # re-armed
        _move(org, -20)
        assert len(low_balance_check()) == 1

    assert len(mail.outbox) == 2


def test_wallets_without_a_threshold_never_alert(org: Organization, run_emails: None) -> None:
    _move(org, -1)

    assert low_balance_check() == []
    assert mail.outbox == []


@pytest.mark.django_db(transaction=True)
def test_the_periodic_check_runs_on_a_real_worker(worker: None) -> None:
    org = Membership.objects.get(user=user_create(email="w@example.com")).organization
    _move(org, 1)
    low_balance_set(organization=org, threshold=5_000_000)

    low_balance_check_task.delay()

    _until(lambda: LowBalanceAlert.objects.get().alerted_at is not None)
    assert Wallet.objects.get(organization=org).balance == 1_000_000
