"""Abuse and anomaly detection: spend bursts over a key's baseline (a leaked key) and new
networks. (Payment velocity, billing's part, is tests/billing/test_velocity.py.)"""

from __future__ import annotations

import datetime as dt
import ipaddress
import itertools

import pytest
from django.core import mail
from django.test import Client
from hypothesis import given
from hypothesis import strategies as st

from accounts.models import ApiKey, AuditEvent, Organization, User
from accounts.services import key_create
from logs.anomalies.services import (
    key_networks_record,
    network_of,
    spend_anomalies_check,
)
from logs.models import AnomalyAlert, AnomalyPolicy, RequestLog
from tests.billing import conftest as billing_fixtures

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]
# A signed-in owner (tests/billing's fixture).
owner_client = billing_fixtures.owner_client

NOW = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)
USD = 1_000_000
_ids = itertools.count()


def _log(
    key: ApiKey, *, at: dt.datetime, cost: int, ip: str | None = "203.0.113.9", plan_cost: int = 0
) -> RequestLog:
    return RequestLog.objects.create(
        request_id=f"req_{next(_ids)}",
        organization_id=key.organization_id,
        api_key_id=key.pk,
        endpoint="chat",
        status_code=200,
        created_at=at,
        cost=cost,
        plan_cost=plan_cost,
        client_ip=ip,
    )


def _key(
    org: Organization, owner: User, *, created: dt.datetime = NOW - dt.timedelta(days=30)
) -> ApiKey:
    key, _ = key_create(organization=org, created_by=owner, name="prod")
    ApiKey.objects.filter(pk=key.pk).update(created_at=created)
    key.refresh_from_db()
    return key


def _baseline_week(key: ApiKey, *, hourly: int) -> None:
    """Seven days of spend before the last hour, averaging HOURLY micro-USD an hour."""
    for day in range(7):
        _log(key, at=NOW - dt.timedelta(days=day + 1), cost=hourly * 24)


@pytest.fixture
def key(org: Organization, owner: User, admin_user: User) -> ApiKey:  # admin_user: the operator
    return _key(org, owner)


# --- Spend anomalies -----------------------------------------------------------------


def test_it_alerts_owners_and_the_operator_once_about_a_burst(key: ApiKey) -> None:
    _baseline_week(key, hourly=100_000)  # $0.10 an hour
    for minutes in (50, 30, 10):
        _log(key, at=NOW - dt.timedelta(minutes=minutes), cost=2 * USD, plan_cost=USD // 2)

    [alert] = spend_anomalies_check(now=NOW)
    again = spend_anomalies_check(now=NOW + dt.timedelta(minutes=5))

    assert (alert.kind, alert.api_key_id) == (AnomalyAlert.Kind.KEY_SPEND, key.pk)
    assert alert.detail["spend"] == 7_500_000 and alert.detail["baseline_hourly"] == 100_000
    assert alert.detail["reasons"] == ["multiple"] and not alert.detail["suspended"]
    assert again == []
    assert sorted(m.to[0] for m in mail.outbox) == ["admin@example.com", "owner@example.com"]
    owners_mail = next(m for m in mail.outbox if m.to == ["owner@example.com"])
    assert "$7.50" in owners_mail.body and "may have leaked" in owners_mail.body
    assert ApiKey.objects.get(pk=key.pk).status == ApiKey.Status.ACTIVE


def test_it_alerts_again_after_the_cooldown(key: ApiKey, settings) -> None:
    settings.ANOMALY_COOLDOWN_HOURS = 2
    _log(key, at=NOW - dt.timedelta(minutes=5), cost=6 * USD)
    _log(key, at=NOW + dt.timedelta(hours=2, minutes=55), cost=6 * USD)

    first = spend_anomalies_check(now=NOW)
    inside = spend_anomalies_check(now=NOW + dt.timedelta(hours=1, minutes=59))
    after = spend_anomalies_check(now=NOW + dt.timedelta(hours=3))

    assert (len(first), len(inside), len(after)) == (1, 0, 1)


def test_steady_spend_and_small_bursts_do_not_alert(
    key: ApiKey, org: Organization, owner: User
) -> None:
    _baseline_week(key, hourly=2 * USD)
    _log(key, at=NOW - dt.timedelta(minutes=10), cost=15 * USD)  # under 10 x $2
    other = _key(org, owner)
    _log(other, at=NOW - dt.timedelta(minutes=10), cost=4 * USD)  # new, but under $5

    assert spend_anomalies_check(now=NOW) == []


def test_the_absolute_ceiling_alerts_whatever_the_baseline(key: ApiKey, settings) -> None:
    settings.ANOMALY_CEILING_USD_PER_HOUR = "20"
    _baseline_week(key, hourly=3 * USD)
    _log(key, at=NOW - dt.timedelta(minutes=10), cost=21 * USD)

    [alert] = spend_anomalies_check(now=NOW)

    assert alert.detail["reasons"] == ["ceiling"]
    assert "ceiling of $20.00" in mail.outbox[0].body


def test_the_key_is_disabled_only_when_the_organization_chose_so(
    key: ApiKey, org: Organization
) -> None:
    _log(key, at=NOW - dt.timedelta(minutes=10), cost=6 * USD)
    AnomalyPolicy.objects.create(organization=org, suspend_keys=True)

    [alert] = spend_anomalies_check(now=NOW)

    key.refresh_from_db()
    assert key.status == ApiKey.Status.DISABLED and alert.detail["suspended"]
    event = AuditEvent.objects.get(kind=AuditEvent.Kind.KEY_CHANGED)
    assert event.meta["changes"]["status"] == ["active", "disabled"]
    assert all("has been disabled" in m.body for m in mail.outbox)


def test_an_organization_spread_over_keys_alerts_as_a_whole(
    key: ApiKey, org: Organization, owner: User
) -> None:
    other = _key(org, owner)
    _log(key, at=NOW - dt.timedelta(minutes=10), cost=3 * USD)
    _log(other, at=NOW - dt.timedelta(minutes=10), cost=3 * USD)

    [alert] = spend_anomalies_check(now=NOW)

    assert (alert.kind, alert.api_key_id, alert.detail["spend"]) == ("org_spend", 0, 6 * USD)
    assert "together spent $6.00" in mail.outbox[0].body


# --- New networks ----------------------------------------------------------------------


@given(st.ip_addresses())
def test_a_network_contains_its_address(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
    network = ipaddress.ip_network(network_of(str(ip)))
    plain = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped else ip
    assert plain in network
    assert network.prefixlen == (24 if plain.version == 4 else 48)


def test_a_key_used_from_a_new_network_alerts_when_the_policy_is_on(
    key: ApiKey, org: Organization
) -> None:
    AnomalyPolicy.objects.create(organization=org, alert_new_network=True)
    _log(key, at=NOW - dt.timedelta(hours=2), cost=0, ip="203.0.113.9")
    assert key_networks_record(now=NOW) == []  # the first network of a key is not news
    _log(key, at=NOW - dt.timedelta(minutes=3), cost=0, ip="203.0.113.200")  # same /24
    _log(key, at=NOW - dt.timedelta(minutes=2), cost=0, ip="198.51.100.7")
    _log(key, at=NOW - dt.timedelta(minutes=1), cost=0, ip="2001:db8:1:2::5")

    alerts = key_networks_record(now=NOW)
    again = key_networks_record(now=NOW)

    assert [a.detail["network"] for a in alerts] == ["198.51.100.0/24", "2001:db8:1::/48"]
    assert again == []
    assert [m.to for m in mail.outbox] == [["owner@example.com"]] * 2
    assert "198.51.100.0/24" in mail.outbox[0].body


def test_new_networks_do_not_alert_without_the_policy_or_in_a_keys_first_day(
    key: ApiKey, org: Organization, owner: User
) -> None:
    fresh = _key(org, owner, created=NOW - dt.timedelta(hours=3))
    for k in (key, fresh):
        _log(k, at=NOW - dt.timedelta(hours=2), cost=0, ip="203.0.113.9")
    key_networks_record(now=NOW)
    _log(key, at=NOW - dt.timedelta(minutes=2), cost=0, ip="198.51.100.7")
    policy_off = key_networks_record(now=NOW)
    AnomalyPolicy.objects.create(organization=org, alert_new_network=True)
    _log(fresh, at=NOW - dt.timedelta(minutes=1), cost=0, ip="192.0.2.1")

    assert policy_off == []
    assert key_networks_record(now=NOW) == []  # the key's first day
    assert not mail.outbox


# --- The owners' policy ----------------------------------------------------------------


def test_owners_choose_the_policy_on_the_organization_page(
    owner_client: Client, org: Organization
) -> None:
    page = owner_client.get("/dashboard/org/")
    assert 'id="anomaly-policy-form"' in page.content.decode()

    response = owner_client.post("/dashboard/org/anomaly-policy/", {"suspend_keys": "on"})

    assert response.status_code == 302
    policy = AnomalyPolicy.objects.get(organization=org)
    assert policy.suspend_keys and not policy.alert_new_network
    event = AuditEvent.objects.get(kind=AuditEvent.Kind.ORG_SETTINGS_CHANGED)
    assert event.meta == {"anomaly_policy": {"suspend_keys": [False, True]}}
    assert "checked" in owner_client.get("/dashboard/org/").content.decode()


def test_members_cannot_change_the_policy(org: Organization, teammate: User) -> None:
    client = Client()
    client.force_login(teammate)
    session = client.session
    session["active_org_id"] = org.pk  # the owner's organization, not the teammate's own
    session.save()

    assert 'id="anomaly-policy-form"' not in client.get("/dashboard/org/").content.decode()
    assert client.post("/dashboard/org/anomaly-policy/", {"suspend_keys": "on"}).status_code == 403
    assert not AnomalyPolicy.objects.exists()
