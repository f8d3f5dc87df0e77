"""Writes of anomaly detection: the spend scan (a key's or organization's last hour against
its baseline, the signature of a leaked key), the new-network scan, and the owners' policy.

Both scans run every five minutes (tasks.py) and read only RequestLog metadata.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
from dataclasses import dataclass, field

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone

from accounts.audit import audit_record
from accounts.models import ApiKey, AuditEvent, Organization, User
from accounts.services import key_update
from logs.anomalies.emails import anomaly_network_email_send, anomaly_spend_email_send
from logs.anomalies.selectors import BASELINE, HOUR, policy_of, spend_by
from logs.models import (
    AnomalyAlert,
    AnomalyCooldown,
    AnomalyPolicy,
    AnomalyWatermark,
    KeyNetwork,
    RequestLog,
)
from money import usd_to_micros

log = logging.getLogger(__name__)

BASELINE_HOURS = int(BASELINE / HOUR)
NETWORK_BATCH = 20_000  # request logs read per scan; a backlog drains over several runs
NETWORK_WATERMARK = "key_networks"
# The first day of a key is its setup: the networks it is first used from are not news.
NEW_KEY_GRACE = dt.timedelta(days=1)


def network_of(ip: str) -> str:
    """The client network of an address: IPv4 /24, IPv6 /48 (IPv4-mapped as IPv4)."""
    address = ipaddress.ip_address(ip)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


def _cooldown_claim(*, kind: str, organization_id: int, api_key_id: int, now: dt.datetime) -> bool:
    """Claim the right to alert about a subject; False while it is cooling down. A
    conditional update, so of two overlapping scans only one wins."""
    until = now + dt.timedelta(hours=settings.ANOMALY_COOLDOWN_HOURS)
    subject = {"kind": kind, "organization_id": organization_id, "api_key_id": api_key_id}
    try:
        with transaction.atomic():
            AnomalyCooldown.objects.create(until=until, **subject)
            return True
    except IntegrityError:
        pass
    return bool(AnomalyCooldown.objects.filter(until__lte=now, **subject).update(until=until))


@dataclass(frozen=True, slots=True)
class _Thresholds:
    multiple: int
    min_spend: int  # micro-USD
    ceiling: int | None  # micro-USD per hour

    @classmethod
    def from_settings(cls) -> _Thresholds:
        ceiling = settings.ANOMALY_CEILING_USD_PER_HOUR
        return cls(
            multiple=settings.ANOMALY_SPEND_MULTIPLE,
            min_spend=usd_to_micros(settings.ANOMALY_MIN_SPEND_USD),
            ceiling=usd_to_micros(ceiling) if ceiling else None,
        )

    def floor(self) -> int:
        """Below this, an hour cannot be anomalous: no need to compute its baseline."""
        return self.min_spend if self.ceiling is None else min(self.min_spend, self.ceiling)

    def reasons(self, *, spend: int, baseline_total: int) -> list[str]:
        """Why SPEND (last hour) is anomalous against BASELINE_TOTAL (the 7 days before)."""
        reasons = []
        # spend > multiple * (baseline_total / hours), in integers
        if spend >= self.min_spend and spend * BASELINE_HOURS > self.multiple * baseline_total:
            reasons.append("multiple")
        if self.ceiling is not None and spend > self.ceiling:
            reasons.append("ceiling")
        return reasons


def _alert_spend(
    *,
    kind: str,
    organization: Organization,
    key: ApiKey | None,
    spend: int,
    baseline_total: int,
    reasons: list[str],
    limits: _Thresholds,
    now: dt.datetime,
) -> AnomalyAlert | None:
    if not _cooldown_claim(
        kind=kind, organization_id=organization.pk, api_key_id=key.pk if key else 0, now=now
    ):
        return None
    suspended = False
    if (
        key is not None
        and key.status == ApiKey.Status.ACTIVE
        and policy_of(organization.pk).suspend_keys
    ):
        # Audited as a key change and broadcast: the relay stops the key within a request.
        key_update(key=key, status=ApiKey.Status.DISABLED)
        suspended = True
    alert = AnomalyAlert.objects.create(
        organization_id=organization.pk,
        api_key_id=key.pk if key else 0,
        kind=kind,
        created_at=now,
        detail={
            "spend": spend,
            "baseline_hourly": baseline_total // BASELINE_HOURS,
            "multiple": limits.multiple,
            "ceiling": limits.ceiling,
            "reasons": reasons,
            "suspended": suspended,
        },
    )
    try:
        anomaly_spend_email_send(alert=alert, organization=organization, key=key)
    except Exception:
        # The alert is recorded and visible in the admin; a mail outage must not stop the scan.
        log.exception("emailing anomaly alert %s failed", alert.pk)
    return alert


def spend_anomalies_check(*, now: dt.datetime | None = None) -> list[AnomalyAlert]:
    """Alert about every key, then every organization, whose last hour of spend is over
    ANOMALY_SPEND_MULTIPLE x its average hour of the 7 days before (and at least
    ANOMALY_MIN_SPEND_USD), or over ANOMALY_CEILING_USD_PER_HOUR. At most one alert per
    subject per ANOMALY_COOLDOWN_HOURS, even with overlapping scans. An organization with an
    anomalous key gets no second, organization-wide alert about the same spend."""
    now = now or timezone.now()
    limits = _Thresholds.from_settings()
    start = now - HOUR
    alerts: list[AnomalyAlert] = []
    key_orgs: set[int] = set()  # organizations with an anomalous key (alerted or cooling down)

    key_hour = spend_by("api_key_id", since=start, until=now)
    candidates = {k: s for k, s in key_hour.items() if s >= limits.floor()}
    if candidates:
        base = spend_by("api_key_id", since=start - BASELINE, until=start, ids=list(candidates))
        keys = ApiKey.objects.select_related("organization").in_bulk(list(candidates))
        for key_id, spend in sorted(candidates.items()):
            key = keys.get(key_id)
            reasons = limits.reasons(spend=spend, baseline_total=base.get(key_id, 0))
            if key is None or not reasons:
                continue
            key_orgs.add(key.organization_id)
            alert = _alert_spend(
                kind=AnomalyAlert.Kind.KEY_SPEND, organization=key.organization, key=key,
                spend=spend, baseline_total=base.get(key_id, 0), reasons=reasons,
                limits=limits, now=now,
            )  # fmt: skip
            if alert is not None:
                alerts.append(alert)

    org_hour = spend_by("organization_id", since=start, until=now)
    org_candidates = {
        o: s for o, s in org_hour.items() if s >= limits.floor() and o not in key_orgs
    }
    if org_candidates:
        ids = list(org_candidates)
        base = spend_by("organization_id", since=start - BASELINE, until=start, ids=ids)
        orgs = Organization.objects.in_bulk(ids)
        for org_id, spend in sorted(org_candidates.items()):
            organization = orgs.get(org_id)
            reasons = limits.reasons(spend=spend, baseline_total=base.get(org_id, 0))
            if organization is None or not reasons:
                continue
            alert = _alert_spend(
                kind=AnomalyAlert.Kind.ORG_SPEND, organization=organization, key=None,
                spend=spend, baseline_total=base.get(org_id, 0), reasons=reasons,
                limits=limits, now=now,
            )  # fmt: skip
            if alert is not None:
                alerts.append(alert)
    return alerts


def key_networks_record(
    *, now: dt.datetime | None = None, batch: int = NETWORK_BATCH
) -> list[AnomalyAlert]:
    """Record the client networks of the request logs since the last scan (by id) and
    alert owners who turned `alert_new_network` on about a key used from a network it had
    not used before. A key's first network, and any network in its first day, is not news;
    nor is anything about a key with no network recorded by an earlier scan (so turning the
    feature on does not alert about every key). Each range of ids is claimed with a
    conditional update of the watermark: overlapping scans never read it twice."""
    now = now or timezone.now()
    mark, _ = AnomalyWatermark.objects.get_or_create(name=NETWORK_WATERMARK)
    rows = list(
        RequestLog.objects.filter(pk__gt=mark.last_id)
        .order_by("pk")
        .values_list("pk", "api_key_id", "client_ip", "created_at")[:batch]
    )
    if not rows:
        return []
    claimed = AnomalyWatermark.objects.filter(name=NETWORK_WATERMARK, last_id=mark.last_id).update(
        last_id=rows[-1][0]
    )
    if not claimed:
        return []
    seen: dict[tuple[int, str], dt.datetime] = {}
    for _, key_id, ip, created_at in rows:
        if key_id and ip:
            seen.setdefault((key_id, network_of(ip)), created_at)
    key_ids = {key_id for key_id, _ in seen}
    known = set(
        KeyNetwork.objects.filter(api_key_id__in=key_ids).values_list("api_key_id", "network")
    )
    had_networks = {key_id for key_id, _ in known}
    new = {pair: first for pair, first in seen.items() if pair not in known}
    KeyNetwork.objects.bulk_create(
        [KeyNetwork(api_key_id=k, network=n, first_seen=t) for (k, n), t in new.items()],
        ignore_conflicts=True,
    )
    news = [
        (key_id, network, first)
        for (key_id, network), first in new.items()
        if key_id in had_networks
    ]
    if not news:
        return []
    keys = ApiKey.objects.select_related("organization").in_bulk({k for k, _, _ in news})
    policies: dict[int, AnomalyPolicy] = {}
    alerts = []
    for key_id, network, first in sorted(news, key=lambda n: n[2]):
        key = keys.get(key_id)
        if key is None or first < key.created_at + NEW_KEY_GRACE:
            continue
        org_id = key.organization_id
        if org_id not in policies:
            policies[org_id] = policy_of(org_id)
        if not policies[org_id].alert_new_network:
            continue
        alert = AnomalyAlert.objects.create(
            organization_id=org_id,
            api_key_id=key_id,
            kind=AnomalyAlert.Kind.NEW_NETWORK,
            created_at=now,
            detail={"network": network, "first_seen": first.isoformat()},
        )
        alerts.append(alert)
        try:
            anomaly_network_email_send(alert=alert, key=key, network=network, first_seen=first)
        except Exception:
            log.exception("emailing anomaly alert %s failed", alert.pk)
    return alerts


@dataclass
class ScanResult:
    spend_alerts: list[AnomalyAlert] = field(default_factory=list)
    network_alerts: list[AnomalyAlert] = field(default_factory=list)


def anomalies_scan(*, now: dt.datetime | None = None) -> ScanResult:
    """One run of the periodic job: spend anomalies and new networks. (Payment velocity,
    billing's part, is scanned by billing.tasks.payment_velocity_scan.)"""
    now = now or timezone.now()
    return ScanResult(
        spend_alerts=spend_anomalies_check(now=now), network_alerts=key_networks_record(now=now)
    )


def anomaly_policy_set(
    *,
    organization: Organization,
    suspend_keys: bool,
    alert_new_network: bool,
    actor: User | None = None,
    request: HttpRequest | None = None,
) -> AnomalyPolicy:
    """Save the organization's choices; a change is audited (org_settings_changed, with
    each changed choice before and after)."""
    with transaction.atomic():
        policy, _ = AnomalyPolicy.objects.select_for_update().get_or_create(
            organization=organization
        )
        changes = {
            name: [getattr(policy, name), value]
            for name, value in (
                ("suspend_keys", suspend_keys),
                ("alert_new_network", alert_new_network),
            )
            if getattr(policy, name) != value
        }
        if changes:
            policy.suspend_keys, policy.alert_new_network = suspend_keys, alert_new_network
            policy.updated_at = timezone.now()
            policy.save(update_fields=["suspend_keys", "alert_new_network", "updated_at"])
            audit_record(
                kind=AuditEvent.Kind.ORG_SETTINGS_CHANGED,
                organization=organization,
                request=request,
                actor=actor,
                anomaly_policy=changes,
            )
    return policy
