"""Privacy rights: "Download my data" archives and account deletion (erasure).

Deletion anonymises rather than removes the user row: ledger rows point at users and
organizations with PROTECT, and the ledger must keep amounts, dates and anonymous ids.
What identifies the person (email, name, addresses, user agents, sessions, linked
provider accounts, second factors) is removed or blanked in one transaction.
"""

from __future__ import annotations

import datetime as dt
import json
from importlib import import_module
from typing import Any

from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from allauth.socialaccount.models import SocialAccount
from allauth.usersessions.models import UserSession
from celery import Task, shared_task
from django.conf import settings
from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.contrib.sessions.backends.base import SessionBase
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.access import Capability, role_allows
from accounts.audit import audit_record
from accounts.exceptions import AccountDeletionBlocked
from accounts.models import (
    ApiKey,
    AuditEvent,
    DataExport,
    Invitation,
    LegalAcceptance,
    Membership,
    Organization,
    User,
)
from accounts.privacy_sections import ErasureSubject, ExportSubject, privacy_sections
from accounts.support.selectors import workorders_export
from accounts.support.services import workorders_erase_for


def _session_store() -> SessionBase:
    engine = import_module(settings.SESSION_ENGINE)
    store: SessionBase = engine.SessionStore()
    return store


def user_sessions_end(*, user: User, keep_session_key: str | None = None) -> int:
    """Sign the user out everywhere except KEEP_SESSION_KEY. Returns sessions ended."""
    store = _session_store()
    ended = 0
    for session in UserSession.objects.filter(user=user).exclude(session_key=keep_session_key):
        store.delete(session.session_key)
        session.delete()
        ended += 1
    return ended


def account_delete(*, user: User) -> None:
    """Erase the person, keep the money trail. Atomic.

    Revokes every key they created and their personal organization's keys, ends their
    sessions, removes their email addresses, linked provider accounts, second factors, data
    exports and memberships of other organizations, blanks their addresses and user agents
    in audit events and in the request logs of their keys, and turns the user row into an
    inactive, unusable placeholder. Ledger entries, wallets and balances are untouched, so every
    organization's balance still equals the sum of its ledger rows.

    Raises AccountDeletionBlocked when they are the only owner of a team with other members.
    """
    owned_teams = Organization.objects.filter(
        is_personal=False, membership__user=user, membership__role=Membership.Role.OWNER
    )
    for team in owned_teams:
        owners = Membership.objects.filter(organization=team, role=Membership.Role.OWNER)
        others = Membership.objects.filter(organization=team).exclude(user=user)
        if owners.count() == 1 and others.exists():
            raise AccountDeletionBlocked(team.name)
    with transaction.atomic():
        user = User.objects.select_for_update().get(pk=user.pk)
        email = user.email
        personal = list(
            Organization.objects.filter(
                is_personal=True, membership__user=user, membership__role=Membership.Role.OWNER
            )
        )
        keys = ApiKey.objects.filter(Q(created_by=user) | Q(organization__in=personal))
        key_ids = list(keys.values_list("pk", flat=True))
        keys.exclude(status=ApiKey.Status.REVOKED).update(status=ApiKey.Status.REVOKED)
        # The other apps' parts (request logs' addresses, the email in payment events).
        erasure = ErasureSubject(user=user, email=email, key_ids=key_ids)
        for section in privacy_sections():
            if section.erase is not None:
                section.erase(erasure)
        AuditEvent.objects.filter(Q(user=user) | Q(actor=user)).update(
            ip=None, user_agent="", meta={}
        )
        user_sessions_end(user=user)
        EmailAddress.objects.filter(user=user).delete()
        SocialAccount.objects.filter(user=user).delete()
        Authenticator.objects.filter(user=user).delete()
        DataExport.objects.filter(user=user).delete()
        workorders_erase_for(user=user, personal=personal)
        Invitation.objects.filter(email__iexact=email).delete()
        Membership.objects.filter(user=user).exclude(organization__in=personal).delete()
        for org in personal:
            org.name = f"Deleted account {org.pk}"
            org.save(update_fields=["name"])
        LogEntry.objects.filter(
            content_type=ContentType.objects.get_for_model(User), object_id=str(user.pk)
        ).update(object_repr=f"deleted user {user.pk}", change_message="")
        user.email = f"deleted-{user.pk}@deleted.invalid"
        user.name = ""
        user.is_active = False
        user.is_staff = False
        user.is_superuser = False
        user.email_verified = False
        user.set_unusable_password()
        user.save()
        audit_record(kind=AuditEvent.Kind.ACCOUNT_DELETED, user=user)


def data_export_request(*, user: User) -> DataExport:
    """Queue a new archive for USER; the Celery task is enqueued once the row is committed."""
    hours = settings.DATA_EXPORT_HOURS
    with transaction.atomic():
        export = DataExport.objects.create(
            user=user, expires_at=timezone.now() + dt.timedelta(hours=hours)
        )
        audit_record(kind=AuditEvent.Kind.DATA_EXPORTED, user=user, export_id=export.pk)
        transaction.on_commit(lambda: build_data_export.delay(export.pk))
    return export


# Defined next to the request that enqueues it (accounts.tasks imports it for Celery's
# autodiscovery); the name stays the one queued messages already carry.
@shared_task(
    bind=True, max_retries=3, default_retry_delay=30, name="accounts.tasks.build_data_export"
)
def build_data_export(self: Task[Any, Any], export_id: int) -> None:
    export = DataExport.objects.filter(pk=export_id).select_related("user").first()
    if export is None:  # deleted (account erased, or expired) before the worker ran
        return
    try:
        data_export_build(export=export)
    except Exception as exc:
        if self.request.retries >= (self.max_retries or 0):
            DataExport.objects.filter(pk=export_id).update(state=DataExport.State.FAILED)
            raise
        raise self.retry(exc=exc) from exc


def data_export_build(*, export: DataExport) -> DataExport:
    """Fill EXPORT with the person's data as JSON and mark it ready. Safe to run twice."""
    archive = json.dumps(data_export_contents(user=export.user), cls=DjangoJSONEncoder, indent=1)
    export.archive = archive
    export.state = DataExport.State.READY
    export.ready_at = timezone.now()
    export.save(update_fields=["archive", "state", "ready_at"])
    return export


def data_exports_purge(*, now: dt.datetime | None = None) -> int:
    """Delete archives past their expiry."""
    return DataExport.objects.filter(expires_at__lte=now or timezone.now()).delete()[0]


def data_export_contents(*, user: User) -> dict[str, Any]:
    """Everything TokenHub holds about USER: profile, memberships, keys' metadata, the
    ledgers of organizations whose billing they may see, their keys' request metadata,
    their security events, legal acceptances and sign-in providers. No secrets."""
    memberships = list(Membership.objects.filter(user=user).select_related("organization"))
    billing_orgs = [m.organization for m in memberships if role_allows(m.role, Capability.BILLING)]
    keys = ApiKey.objects.filter(created_by=user).order_by("pk")
    key_ids = [k.pk for k in keys]
    subject = ExportSubject(
        user=user, key_ids=key_ids, billing_organization_ids=[o.pk for o in billing_orgs]
    )
    return {
        "format": "tokenhub-data-export/1",
        "generated_at": timezone.now(),
        "profile": {
            "id": user.pk,
            "email": user.email,
            "name": user.name,
            "date_joined": user.date_joined,
            "last_login": user.last_login,
            "email_verified": user.email_verified,
            "emails": list(EmailAddress.objects.filter(user=user).values("email", "verified")),
        },
        "organizations": [
            {
                "id": m.organization_id,
                "name": m.organization.name,
                "personal": m.organization.is_personal,
                "role": m.role,
                "joined_at": m.created_at,
            }
            for m in memberships
        ],
        "api_keys": list(
            keys.values(
                "id",
                "organization_id",
                "name",
                "prefix",
                "status",
                "scopes",
                "created_at",
                "expires_at",
                "last_used_at",
                "allowed_models",
                "allowed_ips",
                "spend_limit",
                "spend_limit_period",
                "spent",
                "rpm_limit",
                "tpm_limit",
            )
        ),
        # The other apps' parts: billing's ledger, the logs' request metadata.
        **{section.name: section.export(subject) for section in privacy_sections()},
        "security_events": list(
            AuditEvent.objects.filter(user=user)
            .order_by("pk")
            .values("kind", "created_at", "ip", "user_agent", "organization_id", "meta")
        ),
        "legal_acceptances": list(
            LegalAcceptance.objects.filter(user=user).values(
                "document__kind", "document__version", "accepted_at"
            )
        ),
        "sign_in_providers": list(
            SocialAccount.objects.filter(user=user).values("provider", "uid", "date_joined")
        ),
        "sessions": list(
            UserSession.objects.filter(user=user).values(
                "ip", "user_agent", "created_at", "last_seen_at"
            )
        ),
        # Their support work orders and messages; attachments by name and size only.
        "work_orders": workorders_export(user=user),
    }
