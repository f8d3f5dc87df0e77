"""Monthly statements: figures from a month of ledger activity, plan payments and usage;
issued once, idle organizations skipped, emailed once to owners and billing members with
the PDF, shown and downloaded only by members allowed to see billing, and the API."""

from __future__ import annotations

import datetime as dt
import io
import logging
from decimal import Decimal
from itertools import count

import pytest
from django.core import mail
from django.test import Client
from hypothesis import given
from hypothesis import strategies as st
from pypdf import PdfReader

from accounts.access import ACTIVE_ORG_SESSION_KEY
from accounts.models import Membership, Organization, User
from accounts.selectors import organization_personal
from accounts.services import user_create
from billing.models import LedgerEntry, Plan, PlanPayment, Statement, Subscription, Wallet
from billing.services import wallet_credit
from billing.statement_tasks import send_statement_email, statements_issue_previous_month
from billing.statements import (
    StatementMismatch,
    period_parse,
    previous_period,
    statement_email,
    statement_issue,
    statement_pdf,
    statements_issue_month,
)
from logs.models import DailyUsage, RequestLog, RolledUpDay

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]

MAY = dt.date(2025, 5, 1)
USD = 1_000_000
_sources = count()


def at(day: str, time: str = "12:00:00") -> dt.datetime:
    return dt.datetime.fromisoformat(f"{day}T{time}+00:00")


def entry(org: Organization, kind: str, usd: str, when: dt.datetime) -> LedgerEntry:
    """A ledger entry through the one credit service, then dated (entries are made in
    date order, so their recorded balances still follow each other)."""
    made, _ = wallet_credit(
        organization=org, amount=int(Decimal(usd) * USD), kind=kind, source_type="test",
        source_id=str(next(_sources)),
    )  # fmt: skip
    LedgerEntry.objects.filter(pk=made.pk).update(created_at=when)
    return made


def log(org: Organization, model: str, when: dt.datetime, cost: int = 0, plan_cost: int = 0):
    return RequestLog.objects.create(
        request_id=f"req-{next(_sources)}", organization_id=org.pk, endpoint="chat",
        model=model, status_code=200, cost=cost, plan_cost=plan_cost, created_at=when,
    )  # fmt: skip


def plan_payment(org: Organization, amount: int, paid_at: dt.datetime) -> PlanPayment:
    plan = Plan.objects.get_or_create(name="Pro", slug="pro", defaults={"price": 2000})[0]
    sub = Subscription.objects.get_or_create(
        organization=org, plan=plan, provider="stripe", provider_ref="sub_1",
        defaults={"current_period_start": at("2025-04-15"),
                  "current_period_end": at("2025-06-15"), "status": "active"},
    )[0]  # fmt: skip
    return PlanPayment.objects.create(
        subscription=sub, organization=org, provider="stripe",
        provider_ref=f"in_{next(_sources)}", amount=amount, currency="usd",
        period_start=paid_at, period_end=paid_at + dt.timedelta(days=30), paid_at=paid_at,
    )  # fmt: skip


@pytest.fixture
def busy_may(org: Organization) -> Organization:
    """A realistic May 2025 with activity on both sides of its boundaries."""
    org.legal_name = "Müller GmbH"
    org.name = "Ωmega Labs"
    org.billing_address = "Hauptstraße 5\n10115 Berlin"
    org.billing_country = "DE"
    org.tax_id = "DE123456789"
    org.save()
    entry(org, "topup", "100", at("2025-04-02"))
    entry(org, "charge", "-0.25", at("2025-04-30", "23:59:59.999999"))  # April: opening
    entry(org, "charge", "-1.5", at("2025-05-01", "00:00:00"))  # the first instant of May
    entry(org, "topup", "50", at("2025-05-03"))
    entry(org, "redeem", "10", at("2025-05-05"))
    entry(org, "charge", "-3.25", at("2025-05-10"))
    entry(org, "refund", "-20", at("2025-05-25"))
    entry(org, "adjust", "1.5", at("2025-05-28"))
    entry(org, "charge", "-0.000001", at("2025-05-31", "23:59:59.999999"))
    entry(org, "charge", "-7", at("2025-06-01", "00:00:00"))  # June: excluded
    plan_payment(org, 2000, at("2025-05-15"))
    plan_payment(org, 1000, at("2025-04-30", "23:00:00"))  # April: excluded
    # May 2 is rolled up (its logs may linger until purged: DailyUsage counts them).
    RolledUpDay.objects.create(day=dt.date(2025, 5, 2))
    DailyUsage.objects.create(
        day=dt.date(2025, 5, 2), organization_id=org.pk, model="gpt-4o", requests=3,
        cost=1_200_000,
    )  # fmt: skip
    log(org, "gpt-4o", at("2025-05-02"), cost=999_000_000)  # counted by the rollup row
    log(org, "gpt-4o", at("2025-05-10"), cost=300_000)
    log(org, "claude-sonnet-4", at("2025-05-10"), plan_cost=2_000_000)
    log(org, "claude-sonnet-4", at("2025-05-31", "23:59:59"), plan_cost=500_000)
    log(org, "gpt-4o", at("2025-06-01", "00:00:00"), cost=5_000_000)  # June
    return org


def test_it_states_the_month_from_the_ledger_plans_and_usage(busy_may: Organization) -> None:
    statement = statement_issue(organization_id=busy_may.pk, period=MAY)

    assert statement is not None
    assert statement.opening_balance == 99_750_000
    assert statement.topups == 50 * USD
    assert statement.redemptions == 10 * USD
    assert statement.usage == -4_750_001
    assert statement.refunds == -20 * USD
    assert statement.adjustments == 1_500_000
    assert statement.closing_balance == 136_499_999
    assert statement.plan_charges == {"usd": 2000}
    # Rolled-up days from DailyUsage, the others from the logs; the largest charge first.
    assert statement.usage_by_model == [
        {"model": "gpt-4o", "requests": 4, "cost": 1_500_000, "plan_cost": 0},
        {"model": "claude-sonnet-4", "requests": 2, "cost": 0, "plan_cost": 2_500_000},
    ]
    assert statement.billed_to["legal_name"] == "Müller GmbH"
    assert statement.issuer["legal_name"] == "TokenHub"


def test_issuing_again_returns_the_statement_already_issued(busy_may: Organization) -> None:
    first = statement_issue(organization_id=busy_may.pk, period=MAY)
    busy_may.legal_name = "Renamed AG"
    busy_may.save()

    again = statement_issue(organization_id=busy_may.pk, period=MAY)

    assert first is not None and again is not None
    assert again.pk == first.pk
    assert again.billed_to["legal_name"] == "Müller GmbH"  # frozen when issued
    assert Statement.objects.count() == 1


def test_a_month_not_over_yet_is_refused(org: Organization) -> None:
    this_month = previous_period().replace(day=28) + dt.timedelta(days=4)
    with pytest.raises(ValueError, match="not over"):
        statement_issue(organization_id=org.pk, period=this_month.replace(day=1))
    with pytest.raises(ValueError, match="1st"):
        statement_issue(organization_id=org.pk, period=dt.date(2025, 5, 2))


def test_the_month_run_skips_idle_organizations(busy_may: Organization, stranger: User) -> None:
    # One organization only holds a balance from before May: it still gets a statement.
    saver = organization_personal(user=user_create(email="saver@example.com"))
    entry(saver, "topup", "5", at("2025-03-01"))
    idle = organization_personal(user=stranger)

    issued = statements_issue_month(period=MAY)

    by_org = {s.organization_id: s for s in Statement.objects.filter(pk__in=issued)}
    assert set(by_org) == {busy_may.pk, saver.pk}
    assert by_org[saver.pk].opening_balance == by_org[saver.pk].closing_balance == 5 * USD
    assert statement_issue(organization_id=idle.pk, period=MAY) is None
    assert not Statement.objects.filter(organization=idle).exists()


def test_a_ledger_that_does_not_add_up_is_reported_not_stated(
    busy_may: Organization, stranger: User, caplog: pytest.LogCaptureFixture
) -> None:
    other = organization_personal(user=stranger)
    entry(other, "topup", "3", at("2025-05-04"))
    # A balance movement the statement has no line for: never silently left out.
    wallet = Wallet.objects.get(organization=busy_may)
    LedgerEntry.objects.create(
        wallet=wallet, kind="bonus", amount=USD, balance_after=wallet.balance + USD,
        source_type="test", source_id="unknown", created_at=at("2025-05-20"),
    )  # fmt: skip
    Wallet.objects.filter(pk=wallet.pk).update(balance=wallet.balance + USD)

    with pytest.raises(StatementMismatch):
        statement_issue(organization_id=busy_may.pk, period=MAY)
    with caplog.at_level(logging.ERROR, logger="billing.statements"):
        issued = statements_issue_month(period=MAY)

    assert [s.organization_id for s in Statement.objects.filter(pk__in=issued)] == [other.pk]
    assert f"statement of org {busy_may.pk} for 2025-05-01 not issued" in caplog.text


def _member(org: Organization, email: str, role: str) -> User:
    user = user_create(email=email, password="pass-123-pass")
    Membership.objects.create(user=user, organization=org, role=role)
    return user


def test_it_emails_owners_and_billing_members_once_with_the_pdf(
    busy_may: Organization, teammate: User
) -> None:
    _member(busy_may, "books@example.com", Membership.Role.BILLING)
    _member(busy_may, "ops@example.com", Membership.Role.ADMIN)
    statement = statement_issue(organization_id=busy_may.pk, period=MAY)
    assert statement is not None

    assert statement_email(statement_id=statement.pk) == 2
    assert statement_email(statement_id=statement.pk) == 0

    assert len(mail.outbox) == 1
    email = mail.outbox[0]
    assert sorted(email.to) == ["books@example.com", "owner@example.com"]
    assert "2025-05" in email.subject
    assert "$136.499999" in email.body
    assert "/dashboard/billing/statements/2025-05/" in email.body
    [(name, content, mimetype)] = email.attachments
    assert (name, mimetype) == ("statement-2025-05.pdf", "application/pdf")
    assert "Müller GmbH" in _pdf_text(content)
    statement.refresh_from_db()
    assert statement.emailed_at is not None


def test_the_monthly_task_issues_last_month_and_emails_each_once(
    org: Organization, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        send_statement_email, "delay", lambda pk: send_statement_email.apply(args=(pk,))
    )
    last_month = previous_period()
    entry(org, "topup", "5", dt.datetime.combine(last_month, dt.time(9), tzinfo=dt.UTC))

    assert statements_issue_previous_month.apply().get() == 1
    assert statements_issue_previous_month.apply().get() == 1  # again: nothing new

    assert Statement.objects.get().period == last_month
    assert [m.to for m in mail.outbox] == [["owner@example.com"]]


def _pdf_text(content: bytes | str) -> str:
    data = content.encode() if isinstance(content, str) else content
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def test_the_pdf_shows_both_parties_the_totals_and_non_ascii_names(
    busy_may: Organization, settings
) -> None:
    settings.OPERATOR_LEGAL_NAME = "Relay Ops Ltd"
    settings.OPERATOR_ADDRESS = "1 Straße des 17. Juni\nBerlin"
    settings.OPERATOR_TAX_ID = "DE999"
    busy_may.billing_address = "Hauptstraße 5\nΩmega Γλυφάδα\n山田ビル\n10115 Berlin"
    busy_may.save()
    statement = statement_issue(organization_id=busy_may.pk, period=MAY)
    assert statement is not None

    text = _pdf_text(statement_pdf(statement))

    for expected in ("Relay Ops Ltd", "Straße des 17. Juni", "Tax ID: DE999", "Müller GmbH",
                     "Hauptstraße 5", "Ωmega Γλυφάδα", "Tax ID: DE123456789", "Statement 2025-05",
                     "$99.750000", "$136.499999", "-$20.000000", "$1.500000",
                     "gpt-4o", "claude-sonnet-4", "20.00"):  # fmt: skip
        assert expected in text, expected
    # DejaVu Sans has no CJK glyphs: they print as "?" rather than vanish.
    assert "????" in text and "山田" not in text


def _client(user: User, acting_in: Organization | None = None) -> Client:
    """Signed in, acting in ACTING_IN (as chosen with the switcher) or the personal org."""
    client = Client()
    client.force_login(user)
    if acting_in is not None:
        session = client.session
        session[ACTIVE_ORG_SESSION_KEY] = acting_in.pk
        session.save()
    return client


def test_members_allowed_to_see_billing_view_and_download_it(
    busy_may: Organization, owner: User, teammate: User, stranger: User
) -> None:
    accountant = _member(busy_may, "books@example.com", Membership.Role.BILLING)
    statement_issue(organization_id=busy_may.pk, period=MAY)
    page, pdf = (
        "/dashboard/billing/statements/2025-05/",
        "/dashboard/billing/statements/2025-05/pdf",
    )

    owner_page = _client(owner).get(page)
    assert owner_page.status_code == 200
    assert "Müller GmbH" in owner_page.text and "$136.499999" in owner_page.text
    download = _client(accountant, busy_may).get(pdf)
    assert download.status_code == 200
    assert download["Content-Type"] == "application/pdf"
    assert 'filename="statement-2025-05.pdf"' in download["Content-Disposition"]
    assert "Müller GmbH" in _pdf_text(download.content)

    # A plain member of the organization; the stranger acts in their own organization.
    assert _client(teammate, busy_may).get(page).status_code == 403
    assert _client(stranger).get(page).status_code == 404
    assert _client(stranger).get(pdf).status_code == 404
    assert _client(owner).get("/dashboard/billing/statements/2025-04/").status_code == 404
    assert _client(owner).get("/dashboard/billing/statements/2025-13/").status_code == 404


def test_the_billing_page_lists_statements_or_says_when_the_first_comes(
    busy_may: Organization, owner: User, stranger: User
) -> None:
    statement_issue(organization_id=busy_may.pk, period=MAY)

    listed = _client(owner).get("/dashboard/billing/")
    empty = _client(stranger).get("/dashboard/billing/")

    assert 'href="/dashboard/billing/statements/2025-05/pdf"' in listed.text
    assert "Your first statement is issued on the 1st of next month." in empty.text


def test_the_api_lists_and_returns_statements(
    busy_may: Organization, owner: User, teammate: User, stranger: User
) -> None:
    entry(busy_may, "charge", "-1", at("2025-06-10"))
    statement_issue(organization_id=busy_may.pk, period=MAY)
    statement_issue(organization_id=busy_may.pk, period=dt.date(2025, 6, 1))
    client = _client(owner)

    listing = client.get("/api/v1/statements")
    detail = client.get("/api/v1/statements/2025-05")
    pdf = client.get("/api/v1/statements/2025-05/pdf")

    assert listing.status_code == 200
    assert [s["period"] for s in listing.json()["data"]] == ["2025-06", "2025-05"]
    body = detail.json()
    assert body["opening_balance_usd"] == "99.750000"
    assert body["usage_usd"] == "-4.750001"
    assert body["closing_balance_usd"] == "136.499999"
    assert body["plan_charges"] == {"usd": "20.00"}
    assert body["usage_by_model"][0] == {
        "model": "gpt-4o", "requests": 4, "cost_usd": "1.500000", "plan_cost_usd": "0.000000"
    }  # fmt: skip
    assert body["billed_to"]["legal_name"] == "Müller GmbH"
    assert body["pdf_url"] == "/api/v1/statements/2025-05/pdf"
    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf"
    assert "$136.499999" in _pdf_text(pdf.content)

    assert client.get("/api/v1/statements/2025-13").status_code == 404
    assert client.get("/api/v1/statements/2025-5").status_code == 404
    assert _client(teammate, busy_may).get("/api/v1/statements").status_code == 403
    assert _client(stranger).get("/api/v1/statements").json() == {"data": []}
    assert _client(stranger).get("/api/v1/statements/2025-05").status_code == 404
    assert _client(stranger).get("/api/v1/statements/2025-05/pdf").status_code == 404


@given(st.text(max_size=12))
def test_period_parse_accepts_only_a_real_year_and_month(text: str) -> None:
    period = period_parse(text)

    assert period is None or (period.day == 1 and f"{period.year:04d}-{period.month:02d}" == text)


@given(st.dates())
def test_period_parse_reads_back_any_month(day: dt.date) -> None:
    assert period_parse(f"{day.year:04d}-{day.month:02d}") == day.replace(day=1)
