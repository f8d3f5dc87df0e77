"""Caps of keys and organizations, where people set and read them: the key pages (typed in
USD, with their use now), the organization page (owners), /api/v1 (micro-USD, like the
key's spend limit) and the admin. Every change is audited and reaches the relay through
the key-change broadcast."""

from __future__ import annotations

import datetime as dt
import re
from html.parser import HTMLParser
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from accounts import services
from accounts.exceptions import InvalidKeySettings, InvalidOrganizationSettings
from accounts.models import ApiKey, AuditEvent, Membership, Organization, User
from accounts.services import key_update, organization_create, user_create
from billing.caps import bucket_start
from billing.models import UsageBucket
from tests.conftest import MakeKey

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]

CAPS_OFF: dict[str, int | None] = dict.fromkeys(services.CAP_FIELDS)


@pytest.fixture
def portal(client: Client, owner: User) -> Client:
    owner.email_verified = True
    owner.save(update_fields=["email_verified"])
    client.force_login(owner)
    return client


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Each key-change broadcast the services ask for (one entry per call)."""
    calls: list[str] = []
    monkeypatch.setattr(services, "key_change_publish", lambda: calls.append("published"))
    return calls


def _key_form(**fields: str | None) -> dict[str, Any]:
    """The key form as the page posts it, every field empty unless given."""
    form: dict[str, str | None] = {
        "name": "web",
        "allowed_models": "",
        "allowed_ips": "",
        "spend_limit_usd": "",
        "spend_limit_period": "total",
        "rpm_limit": "",
        "tpm_limit": "",
        "expires_at": "",
        "requests_per_day": "",
        "max_concurrent": "",
        "spend_cap_day": "",
        "spend_cap_week": "",
        "spend_cap_month": "",
        "show_cost": "on",
    }
    form.update(fields)
    return {name: value for name, value in form.items() if value is not None}


def _caps(row: ApiKey | Organization) -> dict[str, int | None]:
    row.refresh_from_db()
    return {name: getattr(row, name) for name in services.CAP_FIELDS}


# --- The key pages ------------------------------------------------------------------------


def test_it_creates_a_key_with_caps_typed_in_usd(portal: Client) -> None:
    response = portal.post(
        "/dashboard/keys/",
        _key_form(
            requests_per_day="100",
            max_concurrent="4",
            spend_cap_day="5",
            spend_cap_week="20.5",
            spend_cap_month="0.000001",
            show_cost=None,
        ),
    )

    assert response.status_code == 200, response.content.decode()
    key = ApiKey.objects.get()
    assert _caps(key) == {
        "requests_per_day": 100,
        "max_concurrent": 4,
        "spend_cap_day": 5_000_000,
        "spend_cap_week": 20_500_000,
        "spend_cap_month": 1,
    }
    assert key.show_cost is False


def test_it_creates_keys_that_show_their_cost_unless_told_otherwise(portal: Client) -> None:
    page = portal.get("/dashboard/keys/").content.decode()
    portal.post("/dashboard/keys/", _key_form())

    assert re.search(r'<input type="checkbox" name="show_cost"[^>]* checked', page)
    assert ApiKey.objects.get().show_cost is True


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("spend_cap_day", "0", "Enter an amount greater than 0"),
        ("spend_cap_week", "-3", "Enter an amount greater than 0"),
        ("spend_cap_month", "ten", "Enter an amount in USD, like 5 or 2.50."),
        ("spend_cap_day", "1000000000.01", "Enter at most 1,000,000,000 USD."),
        ("spend_cap_week", "0.0000001", "Enter at most 6 decimal places."),
        ("spend_cap_month", "NaN", "Enter an amount in USD"),
        ("requests_per_day", "0", "Ensure this value is greater than or equal to 1."),
        ("max_concurrent", "2.5", "Enter a whole number."),
        (
            "requests_per_day",
            "2147483648",
            "Ensure this value is less than or equal to 2147483647.",
        ),
    ],
)
def test_a_bad_cap_is_a_clear_error_and_nothing_is_saved(
    portal: Client, owner: User, make_key: MakeKey, field: str, value: str, message: str
) -> None:
    key, _ = make_key(owner, name="kept", spend_cap_day=7_000_000)
    label = {
        "spend_cap_day": "Spend per day (USD)",
        "spend_cap_week": "Spend per week (USD)",
        "spend_cap_month": "Spend per month (USD)",
        "requests_per_day": "Requests per day",
        "max_concurrent": "Requests in flight at once",
    }[field]

    created = portal.post("/dashboard/keys/", _key_form(name="new", **{field: value}))
    edited = portal.post(f"/dashboard/keys/{key.pk}/", _key_form(name="changed", **{field: value}))

    for response in (created, edited):
        assert response.status_code == 400
        html = response.content.decode()
        assert f"{label}: {message}" in html  # in the list of errors at the top
        assert 'aria-invalid="true"' in html  # and beside the field
        assert f'value="{value}"' in html  # what was typed is shown back
    assert list(ApiKey.objects.values_list("name", flat=True)) == ["kept"]
    assert _caps(key) == {**CAPS_OFF, "spend_cap_day": 7_000_000}
    assert not AuditEvent.objects.filter(kind="key_changed").exists()


def test_it_edits_caps_and_the_cost_switch_audited_and_broadcast(
    portal: Client, owner: User, make_key: MakeKey, published: list[str]
) -> None:
    key, _ = make_key(owner, name="web", spend_cap_month=50_000_000)

    form = portal.get(f"/dashboard/keys/{key.pk}/").content.decode()
    saved = portal.post(
        f"/dashboard/keys/{key.pk}/",
        _key_form(
            requests_per_day="1000", spend_cap_day="2.50", spend_cap_month="", show_cost=None
        ),
    )

    assert 'name="spend_cap_month" value="50"' in form
    assert saved.status_code == 302
    assert _caps(key) == {**CAPS_OFF, "requests_per_day": 1000, "spend_cap_day": 2_500_000}
    assert key.show_cost is False
    event = AuditEvent.objects.get(kind="key_changed")
    assert event.organization_id == key.organization_id
    assert event.user == owner
    assert event.meta["key_id"] == key.pk
    assert event.meta["changes"] == {
        "requests_per_day": [None, 1000],
        "spend_cap_day": [None, 2_500_000],
        "spend_cap_month": [50_000_000, None],
        "show_cost": [True, False],
    }
    assert published == ["published"]


def test_a_change_by_someone_else_names_them_as_the_actor(
    client: Client, owner: User, make_key: MakeKey
) -> None:
    admin = user_create(email="admin@example.com", password="admin-pass-123")
    Membership.objects.create(user=admin, organization=_personal(owner), role="admin")
    key, _ = make_key(owner, name="web")
    client.force_login(admin)
    client.post("/dashboard/org/switch", {"organization": key.organization_id})

    client.post(f"/dashboard/keys/{key.pk}/", _key_form(max_concurrent="3"))

    event = AuditEvent.objects.get(kind="key_changed")
    assert (event.user, event.actor) == (owner, admin)
    assert event.meta["changes"] == {"max_concurrent": [None, 3]}


def test_saving_an_unchanged_key_writes_no_audit_event(
    portal: Client, owner: User, make_key: MakeKey
) -> None:
    key, _ = make_key(owner, name="web", requests_per_day=10)

    portal.post(f"/dashboard/keys/{key.pk}/", _key_form(requests_per_day="10"))

    assert not AuditEvent.objects.filter(kind="key_changed").exists()


def _personal(user: User) -> Organization:
    return Organization.objects.get(membership__user=user, is_personal=True)


def _use(meter: str, span: str, *, requests: int = 0, cost: int = 0) -> None:
    """Usage settled in the current bucket of SPAN (what settlement writes)."""
    UsageBucket.objects.create(
        meter=meter,
        span=span,
        start=bucket_start(span, dt.datetime.now(dt.UTC)),
        requests=requests,
        cost=cost,
    )


def test_the_key_pages_show_each_cap_with_its_use_and_when_it_resets(
    portal: Client, owner: User, make_key: MakeKey
) -> None:
    key, _ = make_key(
        owner,
        requests_per_day=100,
        max_concurrent=4,
        spend_cap_day=5_000_000,
        spend_cap_week=5_000_000,
        spend_cap_month=200_000_000,
    )
    other, _ = make_key(owner, name="uncapped")
    _use(f"k{key.pk}", "d", requests=12, cost=1_200_000)
    _use(f"k{key.pk}", "w", requests=12, cost=1_200_000)
    _use(f"k{other.pk}", "d", requests=99, cost=99_000_000)  # another key's use: not counted
    org = _personal(owner)
    org.spend_cap_month = 1_000_000_000
    org.save(update_fields=["spend_cap_month"])
    _use(f"o{org.pk}", "M", requests=40, cost=123_450_000)
    tomorrow = bucket_start("d", dt.datetime.now(dt.UTC)) + dt.timedelta(days=1)
    next_week = bucket_start("w", dt.datetime.now(dt.UTC)) + dt.timedelta(days=7)

    detail = portal.get(f"/dashboard/keys/{key.pk}/").content.decode()
    listing = portal.get("/dashboard/keys/").content.decode()

    for text in (
        "12 of 100 today",
        "$1.20 of $5.00 today",
        "$1.20 of $5.00 this week",
        "$0.00 of $200.00 this month",
        "0 of 4 in flight now",
        f"{tomorrow:%Y-%m-%d %H:%M}",  # resets (the viewer's zone: UTC here)
        f"{next_week:%Y-%m-%d %H:%M}",
        "$123.45 of $1,000.00 this month",  # the organization's cap, all keys together
    ):
        assert text in detail, text
    assert "12 of 100 today" in listing
    assert "$1.20 of $5.00 this week" in listing
    assert "99 of" not in listing  # the uncapped key shows no caps
    assert "$123.45" not in listing  # the list shows each key's own caps


# --- The organization page ----------------------------------------------------------------


@pytest.fixture
def team(owner: User) -> Organization:
    return organization_create(name="Acme", owner=owner)


def _member_of(team: Organization, role: str) -> User:
    user = user_create(email=f"{role}@example.com", password="pw-123456789", email_verified=True)
    Membership.objects.create(user=user, organization=team, role=role)
    return user


def _in_team(client: Client, user: User, team: Organization) -> Client:
    client.force_login(user)
    client.post("/dashboard/org/switch", {"organization": team.pk})
    return client


ORG_FORM = {
    "requests_per_day": "5000",
    "max_concurrent": "20",
    "spend_cap_day": "50",
    "spend_cap_week": "",
    "spend_cap_month": "1000.5",
}


def test_an_owner_sets_the_organization_caps_and_plan_fallback(
    client: Client, owner: User, team: Organization, published: list[str]
) -> None:
    portal = _in_team(client, owner, team)

    page = portal.get("/dashboard/org/").content.decode()
    saved = portal.post("/dashboard/org/caps", ORG_FORM)  # plan_fallback unchecked

    assert 'id="org-caps-form"' in page
    assert "When the plan does not cover a request, pay from the balance" in page
    assert saved.status_code == 302
    team.refresh_from_db()
    assert _caps(team) == {
        "requests_per_day": 5000,
        "max_concurrent": 20,
        "spend_cap_day": 50_000_000,
        "spend_cap_week": None,
        "spend_cap_month": 1_000_500_000,
    }
    assert team.plan_fallback is False
    event = AuditEvent.objects.get(kind="org_settings_changed")
    assert (event.organization, event.user) == (team, owner)
    assert event.meta["changes"]["plan_fallback"] == [True, False]
    assert event.meta["changes"]["spend_cap_day"] == [None, 50_000_000]
    assert published == ["published"]  # the relay's key snapshots carry the org's caps
    shown = portal.get("/dashboard/org/").content.decode()
    assert "0 of 5,000 today" in shown
    assert 'name="spend_cap_month" value="1000.5"' in shown


def test_a_bad_organization_cap_is_refused_with_its_reason(
    client: Client, owner: User, team: Organization
) -> None:
    portal = _in_team(client, owner, team)

    response = portal.post(
        "/dashboard/org/caps", {**ORG_FORM, "spend_cap_day": "2e9", "plan_fallback": "on"}
    )

    assert response.status_code == 400
    assert "Spend per day (USD): Enter at most 1,000,000,000 USD." in response.content.decode()
    assert _caps(team) == CAPS_OFF
    assert not AuditEvent.objects.filter(kind="org_settings_changed").exists()


@pytest.mark.parametrize("role", ["admin", "member", "billing"])
def test_only_owners_change_the_organization_caps(
    client: Client, team: Organization, role: str
) -> None:
    team.requests_per_day = 10
    team.save(update_fields=["requests_per_day"])
    portal = _in_team(client, _member_of(team, role), team)

    page = portal.get("/dashboard/org/").content.decode()
    refused = portal.post("/dashboard/org/caps", {**ORG_FORM, "requests_per_day": "999999"})

    assert "0 of 10 today" in page  # everyone sees the caps and their use
    assert 'id="org-caps-form"' not in page
    assert refused.status_code == 403
    assert _caps(team)["requests_per_day"] == 10


# --- /api/v1 ------------------------------------------------------------------------------


def _json(client: Client, method: str, path: str, body: Any) -> Any:
    return getattr(client, method)(path, body, content_type="application/json")


API_CAPS = {
    "requests_per_day": 100,
    "max_concurrent": 2,
    "spend_cap_day": 5_000_000,
    "spend_cap_week": 20_000_000,
    "spend_cap_month": 1_000_000_000_000_000,  # 1,000,000,000 USD: the most there is
}


def test_the_key_api_reads_and_writes_caps_and_the_cost_switch(
    portal: Client, owner: User, published: list[str]
) -> None:
    created = _json(portal, "post", "/api/v1/keys", {"name": "api", **API_CAPS})
    assert created.status_code == 201, created.json()
    key_id = created.json()["id"]
    assert {k: created.json()[k] for k in API_CAPS} == API_CAPS
    assert created.json()["show_cost"] is True

    changed = _json(
        portal,
        "patch",
        f"/api/v1/keys/{key_id}",
        {"spend_cap_day": None, "max_concurrent": 8, "show_cost": False},
    )
    read = portal.get(f"/api/v1/keys/{key_id}").json()

    assert changed.status_code == 200, changed.json()
    assert read == changed.json()
    assert {k: read[k] for k in API_CAPS} == {
        **API_CAPS,
        "spend_cap_day": None,
        "max_concurrent": 8,
    }
    assert read["show_cost"] is False
    event = AuditEvent.objects.get(kind="key_changed")
    assert event.meta["changes"] == {
        "max_concurrent": [2, 8],
        "spend_cap_day": [5_000_000, None],
        "show_cost": [True, False],
    }
    assert published == ["published"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("requests_per_day", 0),
        ("max_concurrent", -1),
        ("requests_per_day", 2**31),
        ("spend_cap_day", 0),
        ("spend_cap_week", 1_000_000_000_000_001),  # a micro-dollar over 1,000,000,000 USD
        ("spend_cap_month", "5.00"),  # micro-USD are whole numbers
        ("spend_cap_day", 1.5),
        ("show_cost", "maybe"),
    ],
)
def test_the_key_api_refuses_a_bad_cap_naming_it(
    portal: Client, owner: User, make_key: MakeKey, field: str, value: Any
) -> None:
    key, _ = make_key(owner, name="kept")

    created = _json(portal, "post", "/api/v1/keys", {"name": "new", field: value})
    changed = _json(portal, "patch", f"/api/v1/keys/{key.pk}", {field: value})

    for response in (created, changed):
        assert response.status_code == 400
        assert field in response.json()
    assert ApiKey.objects.count() == 1
    assert _caps(key) == CAPS_OFF and key.show_cost is True


def test_the_key_api_still_refuses_unknown_fields(portal: Client, owner: User) -> None:
    response = _json(portal, "post", "/api/v1/keys", {"name": "x", "spend_cap_year": 5})

    assert response.status_code == 400
    assert response.json() == {"spend_cap_year": ["unknown field"]}


def test_the_organization_api_reads_and_writes_caps_and_plan_fallback(
    client: Client, owner: User, team: Organization
) -> None:
    api = _in_team(client, owner, team)

    before = api.get(f"/api/v1/organizations/{team.pk}").json()
    changed = _json(
        api,
        "patch",
        f"/api/v1/organizations/{team.pk}",
        {**API_CAPS, "plan_fallback": False},
    )
    renamed = _json(api, "patch", f"/api/v1/organizations/{team.pk}", {"name": "Acme Inc"})

    assert {k: before[k] for k in API_CAPS} == CAPS_OFF
    assert before["plan_fallback"] is True
    assert changed.status_code == 200, changed.json()
    assert {k: changed.json()[k] for k in API_CAPS} == API_CAPS
    assert changed.json()["plan_fallback"] is False
    assert renamed.json()["name"] == "Acme Inc"
    assert renamed.json()["spend_cap_day"] == 5_000_000  # a PATCH changes only what it names
    event = AuditEvent.objects.get(kind="org_settings_changed")
    assert event.meta["changes"]["plan_fallback"] == [True, False]


@pytest.mark.parametrize("role", ["admin", "member", "billing"])
def test_the_organization_api_lets_only_owners_change_caps(
    client: Client, team: Organization, role: str
) -> None:
    api = _in_team(client, _member_of(team, role), team)

    read = api.get(f"/api/v1/organizations/{team.pk}")
    refused = _json(api, "patch", f"/api/v1/organizations/{team.pk}", {"max_concurrent": 1})

    assert read.status_code == 200 and read.json()["max_concurrent"] is None
    assert refused.status_code == 403
    assert _caps(team)["max_concurrent"] is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_concurrent", 0),
        ("spend_cap_month", -5),
        ("spend_cap_day", 10**16),
        ("plan_fallback", "sometimes"),
        ("spend_cap_yearly", 1),
    ],
)
def test_the_organization_api_refuses_a_bad_value_naming_it(
    client: Client, owner: User, team: Organization, field: str, value: Any
) -> None:
    api = _in_team(client, owner, team)

    response = _json(api, "patch", f"/api/v1/organizations/{team.pk}", {field: value})

    assert response.status_code == 400
    assert field in response.json()
    assert _caps(team) == CAPS_OFF and team.plan_fallback is True


def test_the_schema_documents_the_caps(client: Client) -> None:
    schema = client.get("/api/schema/", {"format": "json"}).json()["components"]["schemas"]

    key_write = schema["ApiKeyWriteRequest"]["properties"]
    org_write = schema["PatchedOrganizationUpdateRequest"]["properties"]
    for properties in (key_write, org_write):
        assert properties["spend_cap_week"]["maximum"] == 1_000_000_000_000_000
        assert properties["spend_cap_week"]["minimum"] == 1
        assert properties["spend_cap_week"]["nullable"] is True
        assert properties["requests_per_day"]["minimum"] == 1
    assert key_write["show_cost"]["type"] == "boolean"
    assert org_write["plan_fallback"]["type"] == "boolean"
    assert "show_cost" in schema["ApiKey"]["properties"]
    assert {*services.CAP_FIELDS, "plan_fallback"} <= set(schema["Organization"]["properties"])


# --- The service ---------------------------------------------------------------------------


def test_the_service_refuses_out_of_range_caps(owner: User, make_key: MakeKey) -> None:
    key, _ = make_key(owner)

    bads: list[dict[str, Any]] = [
        {"requests_per_day": 0},
        {"spend_cap_day": services.MAX_SPEND_CAP + 1},
    ]
    for bad in bads:
        with pytest.raises(InvalidKeySettings):
            key_update(key=key, **bad)
        with pytest.raises(InvalidOrganizationSettings):
            services.organization_update(organization=_personal(owner), **bad)

    assert _caps(key) == CAPS_OFF


# --- The admin ------------------------------------------------------------------------------


class _FormFields(HTMLParser):
    """The fields a browser would submit from the admin's change form (id="..._form")."""

    def __init__(self) -> None:
        super().__init__()
        self.data: dict[str, Any] = {}
        self._in_form = False
        self._select: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and a.get("id", "").endswith("_form"):
            self._in_form = True
        if not self._in_form or (not a.get("name") and tag != "option"):
            return
        if tag == "input" and a.get("type") not in ("submit", "button", "file"):
            if a.get("type") in ("checkbox", "radio") and "checked" not in a:
                return
            self.data[a["name"]] = a.get("value", "on" if a.get("type") == "checkbox" else "")
        elif tag == "select":
            self._select = a["name"]
        elif tag == "option" and self._select is not None:
            if "selected" in a or self._select not in self.data:
                self.data[self._select] = a.get("value", "")
        elif tag == "textarea":
            self._textarea = a["name"]
            self.data[a["name"]] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None
        elif tag == "form":
            self._in_form = False

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self.data[self._textarea] += data.removeprefix("\n")


def _admin_form(client: Client, url: str) -> dict[str, Any]:
    parser = _FormFields()
    parser.feed(client.get(url).content.decode())
    assert parser.data, "no change form on the page"
    return parser.data


def test_the_admin_edits_key_caps_in_usd_through_the_service(
    admin_client: Client, admin_user: User, owner: User, make_key: MakeKey, published: list[str]
) -> None:
    key, _ = make_key(owner, spend_cap_week=2_500_000)
    url = reverse("admin:accounts_apikey_change", args=[key.pk])
    form = _admin_form(admin_client, url)

    assert form["spend_cap_week"] == "2.5"
    form.update(spend_cap_day="12.34", requests_per_day="500", name="renamed")
    form.pop("show_cost")  # unticked
    response = admin_client.post(url, form)

    assert response.status_code == 302, response.content.decode()[-3000:]
    key.refresh_from_db()
    assert (key.name, key.spend_cap_day, key.requests_per_day, key.show_cost) == (
        "renamed", 12_340_000, 500, False,
    )  # fmt: skip
    event = AuditEvent.objects.get(kind="key_changed")
    assert (event.user, event.actor) == (owner, admin_user)
    assert event.meta["changes"] == {
        "requests_per_day": [None, 500],
        "spend_cap_day": [None, 12_340_000],
        "show_cost": [True, False],
    }
    assert published == ["published"]


def test_the_admin_refuses_a_bad_cap(admin_client: Client, owner: User, make_key: MakeKey) -> None:
    key, _ = make_key(owner)
    url = reverse("admin:accounts_apikey_change", args=[key.pk])
    form = _admin_form(admin_client, url)

    response = admin_client.post(url, {**form, "spend_cap_month": "0.0000005"})

    assert response.status_code == 200
    assert "Enter at most 6 decimal places." in response.content.decode()
    assert _caps(key) == CAPS_OFF


def test_the_admin_edits_organization_caps_and_plan_fallback(
    admin_client: Client, admin_user: User, team: Organization, published: list[str]
) -> None:
    url = reverse("admin:accounts_organization_change", args=[team.pk])
    form = _admin_form(admin_client, url)

    form.update(spend_cap_month="99.99", max_concurrent="7")
    form.pop("plan_fallback")
    response = admin_client.post(url, form)

    assert response.status_code == 302, response.content.decode()[-3000:]
    team.refresh_from_db()
    assert (team.spend_cap_month, team.max_concurrent, team.plan_fallback) == (
        99_990_000, 7, False,
    )  # fmt: skip
    event = AuditEvent.objects.get(kind="org_settings_changed")
    assert (event.user, event.actor) == (admin_user, None)
    assert event.meta["changes"]["spend_cap_month"] == [None, 99_990_000]
    assert published == ["published"]
