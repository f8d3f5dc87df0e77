"""Invoices of credit lines: issued on the 1st from the statements for organizations with a
line that owe, once; their PDF and email; reminders once each; suspension past the grace;
payment by "Pay now" (demo provider) or by staff marking a transfer received, each lifting
the suspension at once and idempotent on replays and double submissions."""

from __future__ import annotations

import datetime as dt
import io
import re
from decimal import Decimal
from itertools import count

import pytest
from django.core import mail
from django.test import Client
from pypdf import PdfReader
from pytest_django.fixtures import Settings as SettingsWrapper

from accounts import revocations
from accounts.models import Organization, User
from accounts.selectors import organization_personal
from accounts.services import user_create
from billing.invoice_payments import invoice_pay_usd
from billing.invoice_tasks import send_invoice_email
from billing.invoices import (
    invoice_email,
    invoice_mark_received,
    invoice_pdf,
    invoice_reminder_send,
    invoices_issue_month,
    invoices_reminders_due,
    invoices_suspend_overdue,
)
from billing.models import Invoice, LedgerEntry, Statement, TopUp, Wallet
from billing.services import wallet_credit
from billing.statement_tasks import send_statement_email, statements_issue_previous_month
from billing.statements import previous_period, statements_issue_month
from tests.billing.conftest import balance

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]

USD = 1_000_000
MAY = dt.date(2025, 5, 1)
JUNE_1 = dt.datetime(2025, 6, 1, 2, 30, tzinfo=dt.UTC)
DUE = JUNE_1 + dt.timedelta(days=30)
_sources = count()


def spend(org: Organization, micros: int, when: dt.datetime) -> None:
    """Usage charged to ORG at WHEN (a dated ledger entry through the one credit service)."""
    made, _ = wallet_credit(
        organization=org, amount=-micros, kind="charge", source_type="test",
        source_id=str(next(_sources)),
    )  # fmt: skip
    LedgerEntry.objects.filter(pk=made.pk).update(created_at=when)


def line(org: Organization, usd: int = 100) -> None:
    # Set directly: granting a line (and who may get one) is test_credit_lines' business.
    Wallet.objects.filter(organization=org).update(credit_limit=usd * USD)


def issue_may() -> list[int]:
    statements_issue_month(period=MAY, now=JUNE_1)
    return invoices_issue_month(period=MAY, now=JUNE_1)


@pytest.fixture
def owing(org: Organization) -> Invoice:
    """The owner's organization: a 100 USD line, 12.345678 USD used in May, invoiced."""
    line(org)
    spend(org, 12_345_678, dt.datetime(2025, 5, 10, tzinfo=dt.UTC))
    [invoice_id] = issue_may()
    return Invoice.objects.get(pk=invoice_id)


def other_org(email: str) -> Organization:
    user = user_create(email=email, password="pw-123456789", email_verified=True)
    return organization_personal(user=user)


def test_it_invoices_only_credit_lines_that_owe_and_only_once(org: Organization) -> None:
    line(org)
    spend(org, 12_500_000, dt.datetime(2025, 5, 10, tzinfo=dt.UTC))
    in_credit = other_org("paid-up@example.com")  # a line, but a positive balance
    line(in_credit)
    wallet_credit(organization=in_credit, amount=5 * USD, kind="topup", source_type="test",
                  source_id="t1")  # fmt: skip
    LedgerEntry.objects.filter(source_id="t1").update(
        created_at=dt.datetime(2025, 5, 2, tzinfo=dt.UTC)
    )
    prepaid = other_org("prepaid@example.com")  # below zero (a refund) but no line
    spend(prepaid, 3 * USD, dt.datetime(2025, 5, 3, tzinfo=dt.UTC))

    first = issue_may()
    again = invoices_issue_month(period=MAY, now=JUNE_1 + dt.timedelta(hours=1))

    invoice = Invoice.objects.get()
    assert first == again == [invoice.pk]
    assert invoice.organization == org
    assert invoice.statement == Statement.objects.get(organization=org, period=MAY)
    assert (invoice.amount, invoice.state, invoice.number) == (12_500_000, "open", 1)
    assert (invoice.issued_at, invoice.due_at) == (JUNE_1, DUE)


def test_a_month_left_unpaid_is_not_invoiced_again_the_next_month(owing: Invoice) -> None:
    org = owing.organization
    spend(org, 2 * USD, dt.datetime(2025, 6, 15, tzinfo=dt.UTC))  # June's own usage
    july_1 = dt.datetime(2025, 7, 1, 2, 30, tzinfo=dt.UTC)
    statements_issue_month(period=dt.date(2025, 6, 1), now=july_1)

    [june_id] = invoices_issue_month(period=dt.date(2025, 6, 1), now=july_1)

    june = Invoice.objects.get(pk=june_id)
    assert Statement.objects.get(organization=org, period=dt.date(2025, 6, 1)).closing_balance == (
        -owing.amount - 2 * USD
    )
    assert (june.amount, june.number) == (2 * USD, owing.number + 1)  # June only: May is open


def test_the_task_on_the_1st_invoices_after_the_statements_and_emails_once(
    org: Organization, monkeypatch: pytest.MonkeyPatch
) -> None:
    for task in (send_statement_email, send_invoice_email):  # run queued emails inline
        monkeypatch.setattr(task, "delay", lambda pk, task=task: task.apply(args=(pk,)))
    line(org)
    last_month = previous_period()
    spend(org, 2 * USD, dt.datetime.combine(last_month, dt.time(9), tzinfo=dt.UTC))

    statements_issue_previous_month.apply().get()
    statements_issue_previous_month.apply().get()

    invoice = Invoice.objects.get()
    assert invoice.statement is not None and invoice.statement.period == last_month
    subjects = [m.subject for m in mail.outbox]
    assert len(subjects) == 2 and "invoice INV-000001" in subjects[1]
    assert mail.outbox[1].attachments[0][0] == "INV-000001.pdf"


def _pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def test_the_pdf_and_the_email_name_the_invoice_amount_and_due_date(
    owing: Invoice, settings: SettingsWrapper
) -> None:
    settings.OPERATOR_LEGAL_NAME = "Renamed Ltd"  # after issue: the parties stay frozen
    text = _pdf_text(invoice_pdf(owing))
    for expected in ("Invoice INV-000001", "TokenHub", "owner@example.com", "$12.345678",
                     "2025-07-01", "2025-06-01", "2025-05"):  # fmt: skip
        assert expected in text
    assert "Renamed" not in text

    assert invoice_email(invoice_id=owing.pk) == 1
    assert invoice_email(invoice_id=owing.pk) == 0  # claimed: never twice
    [message] = mail.outbox
    assert message.to == ["owner@example.com"]
    assert "INV-000001" in message.body and "2025-07-08" in message.body  # suspension day
    assert message.attachments[0][2] == "application/pdf"


def test_reminders_go_out_before_and_on_the_due_day_once_each(owing: Invoice) -> None:
    assert invoices_reminders_due(now=DUE - dt.timedelta(days=8)) == []
    week_before = DUE - dt.timedelta(days=7)
    assert invoices_reminders_due(now=week_before) == [(owing.pk, "before")]
    assert invoice_reminder_send(invoice_id=owing.pk, kind="before", now=week_before) == 1
    assert invoice_reminder_send(invoice_id=owing.pk, kind="before", now=week_before) == 0
    assert invoices_reminders_due(now=week_before + dt.timedelta(hours=1)) == []

    assert invoices_reminders_due(now=DUE) == [(owing.pk, "due")]
    assert invoice_reminder_send(invoice_id=owing.pk, kind="due", now=DUE) == 1
    assert invoices_reminders_due(now=DUE + dt.timedelta(days=1)) == []
    assert ["due on 2025-07-01" in m.subject for m in mail.outbox] == [True, False]
    assert "due today" in mail.outbox[1].subject


def test_a_missed_early_reminder_is_skipped_and_paid_invoices_get_none(
    owing: Invoice, admin_user: User
) -> None:
    assert invoices_reminders_due(now=DUE + dt.timedelta(hours=3)) == [(owing.pk, "due")]
    invoice_mark_received(invoice_id=owing.pk, reference="wire 1", marked_by=admin_user)
    assert invoices_reminders_due(now=DUE + dt.timedelta(hours=3)) == []
    assert invoice_reminder_send(invoice_id=owing.pk, kind="due", now=DUE) == 0


def _flag(org: Organization) -> str:
    return Wallet.objects.get(organization=org).overdue_invoice


def test_it_suspends_after_the_grace_and_other_credit_does_not_lift_it(
    owing: Invoice, org: Organization, django_capture_on_commit_callbacks
) -> None:
    assert invoices_suspend_overdue(now=DUE + dt.timedelta(days=7, seconds=-1)) == []
    assert _flag(org) == ""
    epoch = revocations.local_epoch()

    with django_capture_on_commit_callbacks(execute=True):
        assert invoices_suspend_overdue(now=DUE + dt.timedelta(days=7)) == [org.pk]
    assert invoices_suspend_overdue(now=DUE + dt.timedelta(days=8)) == []  # already

    assert _flag(org) == "INV-000001"
    assert revocations.local_epoch() > epoch  # relay processes forget the cached keys
    # An ordinary top-up raises the balance; it does not pay the invoice.
    wallet_credit(organization=org, amount=50 * USD, kind="topup", source_type="test",
                  source_id="other")  # fmt: skip
    invoices_suspend_overdue(now=DUE + dt.timedelta(days=9))
    assert _flag(org) == "INV-000001"
    owing.refresh_from_db()
    assert owing.state == "open" and owing.suspended_at is not None


@pytest.fixture
def demo(settings: SettingsWrapper) -> None:
    settings.PAYMENTS_DEMO = True
    settings.SITE_URL = "http://testserver"


def _signed_form(client: Client, topup: TopUp) -> dict[str, str]:
    """The hidden fields of the demo checkout's Pay form, as a browser posts them."""
    html = client.get(f"/billing/demo/{topup.provider_ref}/").content.decode()
    form = html.split('id="demo-pay"')[0].rsplit("<form", 1)[1]
    return dict(re.findall(r'name="([a-z]+)" value="([^"]*)"', form))


def test_pay_now_tops_up_the_amount_and_pays_the_invoice_once(
    demo: None, owing: Invoice, org: Organization, owner_client: Client,
    django_capture_on_commit_callbacks,
) -> None:  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        invoices_suspend_overdue(now=DUE + dt.timedelta(days=7))
    page = owner_client.get("/dashboard/billing/").content.decode()
    assert "INV-000001" in page and "Pay now (12.35 USD)" in page

    response = owner_client.post("/dashboard/billing/invoices/1/pay", {"provider": "demo"})
    topup = TopUp.objects.get()
    assert response.status_code == 302 and response["Location"].endswith(
        f"/billing/demo/{topup.provider_ref}/"
    )
    assert (topup.invoice_id, topup.credit) == (owing.pk, 12_350_000)
    pay = _signed_form(owner_client, topup)
    before = balance(org)
    epoch = revocations.local_epoch()

    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(f"/billing/demo/{topup.provider_ref}/event", pay)
    owner_client.post(f"/billing/demo/{topup.provider_ref}/event", pay)  # a replay

    owing.refresh_from_db()
    assert (owing.state, owing.payment_reference) == ("paid", f"top-up {topup.pk}")
    assert _flag(org) == ""
    assert revocations.local_epoch() > epoch
    assert balance(org) == before + 12_350_000
    assert LedgerEntry.objects.filter(source_type="topup").count() == 1
    # Paid: no second "Pay now".
    again = owner_client.post("/dashboard/billing/invoices/1/pay", {"provider": "demo"})
    assert again.status_code == 302 and TopUp.objects.count() == 1


def test_staff_mark_a_transfer_received_once_however_often_they_submit(
    owing: Invoice, org: Organization, admin_user: User, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        invoices_suspend_overdue(now=DUE + dt.timedelta(days=7))
    client = Client()
    client.force_login(admin_user)
    url = f"/admin/billing/invoice/{owing.pk}/received/"
    assert "12.345678 USD" in client.get(url).content.decode()
    before = balance(org)
    epoch = revocations.local_epoch()

    with django_capture_on_commit_callbacks(execute=True):
        first = client.post(url, {"reference": "SEPA 2025-07-03 #881"})
    second = client.post(url, {"reference": "SEPA 2025-07-03 #881"})

    assert first.status_code == second.status_code == 302
    owing.refresh_from_db()
    assert (owing.state, owing.payment_reference, owing.paid_by) == (
        "paid", "SEPA 2025-07-03 #881", admin_user,
    )  # fmt: skip
    entry = LedgerEntry.objects.get(source_type="invoice")
    assert (entry.source_id, entry.amount, entry.kind) == (str(owing.pk), 12_345_678, "topup")
    assert balance(org) == before + 12_345_678
    assert _flag(org) == "" and revocations.local_epoch() > epoch
    assert not invoice_mark_received(invoice_id=owing.pk, reference="again", marked_by=None)


def test_staff_without_the_permission_cannot_mark_received(owing: Invoice) -> None:
    staff = user_create(email="staff@example.com", password="pw-123456789", email_verified=True)
    User.objects.filter(pk=staff.pk).update(is_staff=True)
    client = Client()
    client.force_login(staff)
    client.post(f"/admin/billing/invoice/{owing.pk}/received/", {"reference": "x"})
    owing.refresh_from_db()
    assert owing.state == "open" and not LedgerEntry.objects.filter(source_type="invoice")


def test_invoices_are_shown_only_to_members_who_see_billing(
    owing: Invoice, owner_client: Client, stranger: User
) -> None:
    page = owner_client.get("/dashboard/billing/invoices/1/")
    assert page.status_code == 200 and b"INV-000001" in page.content
    pdf = owner_client.get("/dashboard/billing/invoices/1/pdf")
    assert pdf["Content-Type"] == "application/pdf" and pdf.content.startswith(b"%PDF")
    other = Client()
    other.force_login(stranger)
    assert other.get("/dashboard/billing/invoices/1/").status_code == 404
    assert other.post("/dashboard/billing/invoices/1/pay", {"provider": "demo"}).status_code == 404
    assert not TopUp.objects.exists()


def test_pay_now_rounds_up_to_the_cent_and_never_pays_less() -> None:
    assert [invoice_pay_usd(Invoice(amount=a)) for a in (1, 10_000, 12_345_678)] == [
        Decimal("0.01"), Decimal("0.01"), Decimal("12.35"),
    ]  # fmt: skip
