"""Credit notes: every refund of a top-up gets one, in the refund's transaction, numbered in
one unbroken sequence (also under concurrency, on PostgreSQL); disputes and replays get
none; the page and the PDF show the number, the amounts and both parties."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test import Client
from hypothesis import given
from hypothesis import strategies as st
from pypdf import PdfReader
from pytest_django.fixtures import Settings as SettingsWrapper

from accounts.models import Membership, Organization, User
from accounts.services import organization_create, user_create
from billing.credit_notes import credit_note_issue, credit_note_label, tax_included
from billing.models import CreditNote, DocumentSequence, LedgerEntry, TopUp
from billing.topups import topup_confirm, topup_dispute_record, topup_refund_record
from tests.billing.conftest import create_topup, post_stripe, process_pending
from tests.fakes.stripe_api import FakeStripe

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]


def paid_topup(org: Organization, *, dollars: int = 20, ref: str = "cs_1") -> TopUp:
    """A Stripe top-up of DOLLARS, credited through the real confirmation."""
    topup = TopUp.objects.create(
        organization=org,
        provider="stripe",
        credit=dollars * 1_000_000,
        pay_amount=dollars * 100,
        currency="USD",
        provider_ref=ref,
    )
    topup_confirm(topup_id=topup.pk, payment_id=f"pi_{ref}", amount=dollars * 100, currency="usd")
    return topup


def member_client(org: Organization, role: str, email: str) -> Client:
    user = user_create(email=email, password="pass-12345-abc")
    Membership.objects.create(user=user, organization=org, role=role)
    client = Client()
    client.force_login(user)
    session = client.session
    session["active_org_id"] = org.pk
    session.save()
    return client


def test_the_label_has_six_digits() -> None:
    assert credit_note_label(42) == "CN-000042"
    assert credit_note_label(1_234_567) == "CN-1234567"


def test_refunds_through_stripe_get_consecutive_notes_and_replays_get_none(
    owner_client: Client, org: Organization, fake_stripe: FakeStripe
) -> None:
    topup = create_topup(owner_client, "20")
    post_stripe(
        owner_client,
        fake_stripe.event("checkout.session.completed", fake_stripe.pay(topup.provider_ref)),
    )
    charge_id = fake_stripe.charge_for(topup.provider_ref)["id"]
    first = fake_stripe.refund_charge(charge_id, 500)
    post_stripe(owner_client, fake_stripe.event("charge.refunded", first))
    second = fake_stripe.refund_charge(charge_id, 300)
    post_stripe(owner_client, fake_stripe.event("charge.refunded", second))
    # The same refund again, as a new delivery (another event id), and the older report.
    post_stripe(owner_client, fake_stripe.event("charge.refunded", second))
    post_stripe(owner_client, fake_stripe.event("charge.refunded", first))
    assert process_pending() == ["processed"] * 5

    notes = list(CreditNote.objects.order_by("number"))
    entries = list(LedgerEntry.objects.filter(kind="refund").order_by("pk"))
    assert [n.number for n in notes] == [1, 2]
    assert [n.ledger_entry_id for n in notes] == [e.pk for e in entries]
    assert [(n.amount, n.currency, n.credit) for n in notes] == [
        (500, "usd", 5_000_000),
        (300, "usd", 3_000_000),
    ]
    assert all(n.topup_id == topup.pk and n.organization_id == org.pk for n in notes)
    assert DocumentSequence.objects.get(name="credit_note").last == 2


def test_a_dispute_takes_credit_back_without_a_credit_note(org: Organization) -> None:
    topup = paid_topup(org, dollars=10)

    entry = topup_dispute_record(topup_id=topup.pk, dispute_id="du_1", amount=1000)

    assert entry is not None and entry.kind == LedgerEntry.Kind.REFUND
    assert not CreditNote.objects.exists()


def test_numbering_continues_the_sequence_and_a_rolled_back_refund_gives_its_number_back(
    org: Organization,
) -> None:
    DocumentSequence.objects.create(name="credit_note", last=41)
    topup = paid_topup(org)

    with pytest.raises(RuntimeError), transaction.atomic():
        topup_refund_record(topup_id=topup.pk, refunded_total=400)
        assert CreditNote.objects.get().number == 42
        raise RuntimeError("the refund's transaction fails after the note was issued")

    assert not CreditNote.objects.exists()
    assert not LedgerEntry.objects.filter(kind="refund").exists()
    entry = topup_refund_record(topup_id=topup.pk, refunded_total=400)
    assert entry is not None
    assert entry.credit_note.number == 42
    assert credit_note_label(entry.credit_note.number) == "CN-000042"


def test_issuing_twice_for_one_entry_returns_the_first_note(org: Organization) -> None:
    topup = paid_topup(org)
    entry = topup_refund_record(topup_id=topup.pk, refunded_total=2000)
    assert entry is not None

    again = credit_note_issue(entry=entry, topup=topup, reason="again")

    assert again.pk == entry.credit_note.pk and again.number == 1
    assert DocumentSequence.objects.get(name="credit_note").last == 1


def test_a_note_freezes_both_parties_and_the_tax_rate(
    org: Organization, settings: SettingsWrapper
) -> None:
    settings.OPERATOR_LEGAL_NAME = "Relay Operator GmbH"
    settings.OPERATOR_TAX_RATE = "19"
    org.legal_name, org.billing_country, org.tax_id = "Acme Ltd", "GB", "GB123456789"
    org.save()
    topup = paid_topup(org)
    entry = topup_refund_record(topup_id=topup.pk, refunded_total=1190)
    assert entry is not None

    org.legal_name = "Acme Renamed Ltd"
    org.save()
    settings.OPERATOR_LEGAL_NAME = "Someone Else"

    note = CreditNote.objects.get()
    assert note.billed_to["legal_name"] == "Acme Ltd" and note.billed_to["tax_id"] == "GB123456789"
    assert note.issuer["legal_name"] == "Relay Operator GmbH"
    assert note.tax_rate == Decimal("19")


def test_a_ledger_entry_that_is_not_a_refund_gets_no_note(org: Organization) -> None:
    topup = paid_topup(org)
    credit = LedgerEntry.objects.get(kind="topup")

    with pytest.raises(ValueError, match="not a refund"):
        credit_note_issue(entry=credit, topup=topup, reason="")
    assert not CreditNote.objects.exists()


@given(
    amount=st.integers(min_value=0, max_value=10**15),
    rate=st.decimals(min_value=0, max_value=Decimal("99.999"), places=3),
)
def test_the_tax_part_is_the_exact_share_rounded_half_up(amount: int, rate: Decimal) -> None:
    tax = tax_included(amount, rate)
    exact = Decimal(amount) * rate / (100 + rate)

    assert 0 <= tax <= amount
    assert abs(Decimal(tax) - exact) <= Decimal("0.5")
    if exact - int(exact) == Decimal("0.5"):  # a half goes up, never to the even neighbour
        assert tax == int(exact) + 1


def test_the_tax_part_of_known_amounts() -> None:
    assert tax_included(1000, Decimal("20")) == 167  # 166.67
    assert tax_included(3, Decimal("20")) == 1  # 0.5 exactly: half up
    assert tax_included(2500, Decimal("0")) == 0


# --- Pages and PDF ------------------------------------------------------------------------


@pytest.fixture
def refunded(org: Organization, settings: SettingsWrapper) -> CreditNote:
    settings.OPERATOR_LEGAL_NAME = "Relay Operator GmbH"
    settings.OPERATOR_ADDRESS = "Hauptstrasse 1\n10115 Berlin"
    settings.OPERATOR_TAX_ID = "DE999999999"
    settings.OPERATOR_TAX_RATE = "20"
    org.legal_name = "Acme Widgets Ltd"
    org.billing_address = "1 High Street\nLondon"
    org.billing_country = "GB"
    org.tax_id = "GB123456789"
    org.save()
    topup = paid_topup(org, dollars=25)
    entry = topup_refund_record(topup_id=topup.pk, refunded_total=1250)
    assert entry is not None
    return entry.credit_note


def test_the_pdf_shows_number_amounts_and_both_parties(
    owner_client: Client, refunded: CreditNote
) -> None:
    response = owner_client.get(f"/dashboard/billing/credit-notes/{refunded.number}/pdf")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert 'filename="CN-000001.pdf"' in response["Content-Disposition"]
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(response.content)).pages)
    for expected in (
        "CN-000001",
        "12.50 USD",  # refunded, tax included
        "2.08 USD",  # 20 % of it: 12.50 x 20 / 120 = 2.0833
        "12.500000 USD",  # the credit taken back
        "Relay Operator GmbH",
        "Hauptstrasse 1",
        "DE999999999",
        "Acme Widgets Ltd",
        "1 High Street",
        "GB123456789",
        f"Top-up #{refunded.topup_id}",
    ):
        assert expected in text, (expected, text)


def test_the_printable_page_and_the_billing_page_show_the_note(
    owner_client: Client, refunded: CreditNote
) -> None:
    page = owner_client.get(f"/dashboard/billing/credit-notes/{refunded.number}/")
    billing = owner_client.get("/dashboard/billing/").content.decode()

    assert page.status_code == 200
    text = page.content.decode()
    assert "CN-000001" in text and "12.50 USD" in text and "2.08 USD" in text
    assert "Acme Widgets Ltd" in text and "Relay Operator GmbH" in text
    assert 'id="credit-notes"' in billing and "CN-000001" in billing
    assert f"/dashboard/billing/credit-notes/{refunded.number}/pdf" in billing


def test_only_members_who_see_billing_get_the_note(
    org: Organization, refunded: CreditNote, stranger: User
) -> None:
    url = f"/dashboard/billing/credit-notes/{refunded.number}/"
    accountant = member_client(org, Membership.Role.BILLING, "books@example.com")
    member = member_client(org, Membership.Role.MEMBER, "dev@example.com")
    outsider = Client()
    outsider.force_login(stranger)
    # The stranger's own team, with a note of its own: still not the other's.
    team = organization_create(name="Other team", owner=stranger)
    refund = topup_refund_record(topup_id=paid_topup(team, ref="cs_other").pk, refunded_total=100)
    assert refund is not None

    assert accountant.get(url).status_code == 200
    assert accountant.get(url + "pdf").status_code == 200
    assert member.get(url).status_code == 403
    assert member.get(url + "pdf").status_code == 403
    assert outsider.get(url).status_code == 404
    assert outsider.get(url + "pdf").status_code == 404


def test_the_admin_shows_notes_read_only(
    admin_user: User, refunded: CreditNote, client: Client
) -> None:
    client.force_login(admin_user)

    listing = client.get("/admin/billing/creditnote/")
    assert listing.status_code == 200 and refunded.organization.name in listing.content.decode()
    assert client.get("/admin/billing/creditnote/add/").status_code == 403
    detail = client.get(f"/admin/billing/creditnote/{refunded.pk}/change/")
    assert detail.status_code == 200 and 'type="submit" value="Save"' not in detail.content.decode()
    assert client.post(f"/admin/billing/creditnote/{refunded.pk}/delete/").status_code == 403
    assert CreditNote.objects.filter(pk=refunded.pk).exists()


# --- Concurrency --------------------------------------------------------------------------

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
@pytest.mark.django_db(transaction=True)
def test_concurrent_refunds_take_numbers_one_to_n_without_gaps(org: Organization) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("row-lock concurrency is only meaningful on PostgreSQL")
    topups = [paid_topup(org, dollars=20, ref=f"cs_{n}") for n in range(THREADS)]
    # No sequence row yet: the racing refunds also race to create it.
    assert not DocumentSequence.objects.exists()

    def refund(n: int) -> None:
        topup_refund_record(topup_id=topups[n].pk, refunded_total=100 * (n + 1))

    _together(refund)

    notes = list(CreditNote.objects.order_by("number"))
    assert [n.number for n in notes] == list(range(1, THREADS + 1))
    assert sorted(n.topup_id or 0 for n in notes) == sorted(t.pk for t in topups)
    assert {n.amount for n in notes} == {100 * (n + 1) for n in range(THREADS)}
    assert DocumentSequence.objects.get(name="credit_note").last == THREADS
