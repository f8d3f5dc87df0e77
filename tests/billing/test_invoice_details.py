"""Invoice details: owners, admins and billing members set them on the organization page
and through the API, with the same validation (checked with Hypothesis); receipts print
them with the operator's details and the tax included."""

from __future__ import annotations

import json
import string
import unicodedata

import pytest
from django import forms
from django.test import Client
from hypothesis import given
from hypothesis import strategies as st
from pytest_django.fixtures import Settings as SettingsWrapper

from accounts.forms import (
    COUNTRY_CODES,
    billing_address_clean,
    country_clean,
    legal_name_clean,
    tax_id_clean,
)
from accounts.models import AuditEvent, Membership, Organization, User
from accounts.services import organization_create, user_create
from billing.models import TopUp
from billing.topups import topup_confirm

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]

DETAILS = {
    "legal_name": "Acme Widgets Ltd",
    "billing_address": "1 High Street\r\nLondon\r\nEC1A 1AA",
    "billing_country": "gb",
    "tax_id": "GB123456789",
}


def _client(user: User, org: Organization) -> Client:
    client = Client()
    client.force_login(user)
    session = client.session
    session["active_org_id"] = org.pk
    session.save()
    return client


@pytest.fixture
def team(owner: User) -> Organization:
    return organization_create(name="Acme", owner=owner)


@pytest.fixture
def clients(team: Organization, owner: User) -> dict[str, Client]:
    """A signed-in client for each role in the team, the team active."""
    made = {"owner": _client(owner, team)}
    for role in ("admin", "billing", "member"):
        user = user_create(email=f"{role}@example.com", password="pass-12345-abc")
        Membership.objects.create(user=user, organization=team, role=role)
        made[role] = _client(user, team)
    return made


def _details(org: Organization) -> dict[str, str]:
    org.refresh_from_db()
    return {f: getattr(org, f) for f in DETAILS}


# --- Validation ---------------------------------------------------------------------------


@given(st.sampled_from(sorted(COUNTRY_CODES)), st.booleans(), st.text(" \t", max_size=2))
def test_every_iso_code_is_taken_in_any_case(code: str, lower: bool, pad: str) -> None:
    assert country_clean(pad + (code.lower() if lower else code) + pad) == code


@given(st.text(max_size=4))
def test_anything_else_is_not_a_country(text: str) -> None:
    try:
        cleaned = country_clean(text)
    except forms.ValidationError:
        assert text.strip().upper() not in COUNTRY_CODES
    else:
        assert cleaned == "" or cleaned in COUNTRY_CODES


@given(st.text(max_size=80))
def test_a_tax_id_is_printable_and_short_or_refused(text: str) -> None:
    try:
        cleaned = tax_id_clean(text)
    except forms.ValidationError:
        stripped = text.strip()
        assert len(stripped) > 64 or not stripped.isprintable()
    else:
        assert cleaned == text.strip() and len(cleaned) <= 64 and cleaned.isprintable()


@given(st.text(max_size=1100))
def test_an_address_keeps_only_newlines_among_control_characters(text: str) -> None:
    try:
        cleaned = billing_address_clean(text)
    except forms.ValidationError:
        return
    assert len(cleaned) <= 1000
    assert all(c == "\n" or unicodedata.category(c) not in ("Cc", "Zl", "Zp") for c in cleaned)
    assert "\r" not in cleaned
    assert billing_address_clean(cleaned) == cleaned  # cleaning again changes nothing


@given(st.text(alphabet=string.printable, max_size=300))
def test_a_legal_name_is_one_line(text: str) -> None:
    try:
        cleaned = legal_name_clean(text)
    except forms.ValidationError:
        stripped = text.strip()
        assert len(stripped) > 200 or any(c in stripped for c in "\n\r\t\x0b\x0c")
    else:
        assert "\n" not in cleaned and len(cleaned) <= 200


def test_known_values() -> None:
    assert billing_address_clean("  1 High St\r\nLondon\rUK \n") == "1 High St\nLondon\nUK"
    for bad in ("1 High St\x00", "a\tb", "a\u2028b", "a\x1bb"):
        with pytest.raises(forms.ValidationError):
            billing_address_clean(bad)
    with pytest.raises(forms.ValidationError):
        country_clean("UK")  # the United Kingdom is GB
    with pytest.raises(forms.ValidationError):
        tax_id_clean("DE 123\u200b456")
    with pytest.raises(forms.ValidationError):
        tax_id_clean("X" * 65)


# --- Portal --------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["owner", "admin", "billing"])
def test_owners_admins_and_billing_members_save_the_details(
    role: str, team: Organization, clients: dict[str, Client]
) -> None:
    page = clients[role].get("/dashboard/org/").content.decode()
    assert 'id="invoice-details-form"' in page

    response = clients[role].post("/dashboard/org/", DETAILS)

    assert response.status_code == 302 and response["Location"].endswith("#invoice-details")
    assert _details(team) == {
        "legal_name": "Acme Widgets Ltd",
        "billing_address": "1 High Street\nLondon\nEC1A 1AA",
        "billing_country": "GB",
        "tax_id": "GB123456789",
    }
    event = AuditEvent.objects.get(kind="org_settings_changed", organization=team)
    assert sorted(event.meta["invoice_details"]) == sorted(DETAILS)
    assert "Acme Widgets" not in json.dumps(event.meta)  # the values stay out of the log


def test_members_neither_see_nor_save_the_form(
    team: Organization, clients: dict[str, Client]
) -> None:
    page = clients["member"].get("/dashboard/org/").content.decode()

    assert 'id="invoice-details-form"' not in page
    assert clients["member"].post("/dashboard/org/", DETAILS).status_code == 403
    assert _details(team)["legal_name"] == ""


def test_invalid_details_are_shown_back_and_nothing_is_saved(
    team: Organization, clients: dict[str, Client]
) -> None:
    response = clients["owner"].post(
        "/dashboard/org/", DETAILS | {"billing_country": "XX", "tax_id": "GB\x07123"}
    )

    assert response.status_code == 400
    text = response.content.decode()
    assert "Enter a two-letter ISO 3166 country code" in text
    assert "A tax ID has only printable characters." in text
    assert _details(team)["legal_name"] == ""


# --- API -----------------------------------------------------------------------------------


def _patch(client: Client, org: Organization, body: object) -> tuple[int, object]:
    response = client.patch(
        f"/api/v1/organizations/{org.pk}", data=json.dumps(body), content_type="application/json"
    )
    return response.status_code, response.json()


@pytest.mark.parametrize("role", ["owner", "admin", "billing"])
def test_the_api_sets_the_details_for_owners_admins_and_billing_members(
    role: str, team: Organization, clients: dict[str, Client]
) -> None:
    status, body = _patch(clients[role], team, DETAILS)

    assert status == 200, body
    assert isinstance(body, dict) and body["billing_country"] == "GB"
    assert body["billing_address"] == "1 High Street\nLondon\nEC1A 1AA"
    read = clients["member"].get(f"/api/v1/organizations/{team.pk}").json()
    assert read["legal_name"] == "Acme Widgets Ltd" and read["tax_id"] == "GB123456789"


def test_the_api_keeps_the_other_settings_for_owners(
    team: Organization, clients: dict[str, Client]
) -> None:
    assert _patch(clients["member"], team, {"tax_id": "X1"})[0] == 403
    assert _patch(clients["billing"], team, {"tax_id": "X1", "name": "Renamed"})[0] == 403
    assert _patch(clients["admin"], team, {"plan_fallback": False})[0] == 403
    status, body = _patch(clients["owner"], team, {"tax_id": "X1", "name": "Renamed"})
    assert status == 200 and isinstance(body, dict)
    assert (body["name"], body["tax_id"]) == ("Renamed", "X1")


def test_the_api_refuses_invalid_details_by_field(
    team: Organization, clients: dict[str, Client]
) -> None:
    status, body = _patch(
        clients["billing"],
        team,
        {"billing_country": "usa", "billing_address": "a\x1bb", "legal_name": "x" * 201},
    )

    assert status == 400
    assert isinstance(body, dict)
    assert set(body) >= {"billing_country", "billing_address", "legal_name"}
    assert _details(team)["legal_name"] == ""


# --- Receipts ------------------------------------------------------------------------------


def _paid_topup(org: Organization) -> TopUp:
    topup = TopUp.objects.create(
        organization=org,
        provider="stripe",
        credit=25_000_000,
        pay_amount=2500,
        currency="USD",
        provider_ref="cs_receipt",
    )
    topup_confirm(topup_id=topup.pk, payment_id="pi_receipt", amount=2500, currency="usd")
    return topup


def test_a_receipt_shows_both_parties_and_the_tax_included(
    team: Organization, clients: dict[str, Client], settings: SettingsWrapper
) -> None:
    settings.OPERATOR_LEGAL_NAME = "Relay Operator GmbH"
    settings.OPERATOR_ADDRESS = "Hauptstrasse 1\n10115 Berlin"
    settings.OPERATOR_TAX_ID = "DE999999999"
    settings.OPERATOR_TAX_RATE = "20"
    clients["owner"].post("/dashboard/org/", DETAILS)
    topup = _paid_topup(team)

    text = clients["billing"].get(f"/dashboard/billing/receipts/{topup.pk}/").content.decode()

    for expected in (
        "Relay Operator GmbH",
        "Hauptstrasse 1",
        "DE999999999",
        "Acme Widgets Ltd",
        "EC1A 1AA",
        "GB123456789",
        "of which tax (20%)",
        "4.17 USD",  # 25.00 x 20 / 120 = 4.1666..., half up to the cent
    ):
        assert expected in text, expected


def test_a_receipt_has_no_tax_line_without_a_tax_rate(
    team: Organization, clients: dict[str, Client], settings: SettingsWrapper
) -> None:
    settings.OPERATOR_TAX_RATE = "0"
    topup = _paid_topup(team)

    text = clients["owner"].get(f"/dashboard/billing/receipts/{topup.pk}/").content.decode()

    assert "of which tax" not in text and "Acme" in text
