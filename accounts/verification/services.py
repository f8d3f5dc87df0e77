"""Writes on organization verification: submit, resubmit, withdraw; staff approve, reject,
request more information and revoke; and the purge of documents past their retention.

Every step locks the organization's row (one open request per organization, also a
database constraint), writes an ORG_SETTINGS_CHANGED audit event with a `verification`
meta field naming the step, and emails the organization's owners after the commit;
submissions and resubmissions also email the operator (emails.py).

Retention: documents are stored encrypted at rest (sealed.fields) and deleted
VERIFICATION_DOCUMENT_RETENTION_DAYS (default 90) days after the request closed, that is
was approved, rejected or withdrawn, by the daily task in tasks.py. The decision, the
legal details and each document's name, type, size and SHA-256 are kept.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.audit import audit_record
from accounts.models import (
    AuditEvent,
    Membership,
    Organization,
    User,
    VerificationDocument,
    VerificationRequest,
)
from accounts.support.attachments import CheckedFile
from accounts.verification.documents import MAX_FILES, sha256
from accounts.verification.emails import notify_operator, notify_owners
from accounts.verification.exceptions import VerificationRefused
from accounts.verification.selectors import verification_can_submit

State = VerificationRequest.State
# The audit events' `verification` values, also the emails' steps.
STEPS = (
    "submitted",
    "resubmitted",
    "withdrawn",
    "approved",
    "rejected",
    "more_info_requested",
    "revoked",
)
MESSAGE_MAX = 4000


@dataclass(frozen=True, slots=True)
class VerificationDetails:
    """The legal details, already cleaned (forms.VerificationForm)."""

    legal_name: str
    registration_number: str
    country: str
    address: str
    contact_name: str
    contact_email: str


def _audit(
    *,
    step: str,
    organization: Organization,
    verification: VerificationRequest | None,
    user: User | None = None,
    actor: User | None = None,
    request: HttpRequest | None = None,
    **meta: object,
) -> None:
    audit_record(
        kind=AuditEvent.Kind.ORG_SETTINGS_CHANGED,
        user=user,
        actor=actor,
        organization=organization,
        request=request,
        verification=step,
        verification_request=verification.pk if verification else None,
        **meta,
    )


def _after_commit(
    step: str, organization: Organization, verification: VerificationRequest | None
) -> None:
    transaction.on_commit(
        lambda: notify_owners(organization=organization, step=step, verification=verification)
    )
    if verification is not None and step in ("submitted", "resubmitted"):
        transaction.on_commit(lambda: notify_operator(verification=verification, step=step))


def _documents_add(
    verification: VerificationRequest, files: Sequence[CheckedFile], now: dt.datetime
) -> None:
    for file in files:
        VerificationDocument.objects.create(
            request=verification,
            name=file.name,
            content_type=file.content_type,
            size=file.size,
            sha256=sha256(file.data),
            data=file.encoded(),
            created_at=now,
        )


def _check_submitter(membership: Membership) -> None:
    if not verification_can_submit(membership=membership):
        raise VerificationRefused(_("Only the organization's owners and admins can do this."))


def verification_submit(
    *,
    membership: Membership,
    details: VerificationDetails,
    files: Sequence[CheckedFile],
    request: HttpRequest | None = None,
    now: dt.datetime | None = None,
) -> VerificationRequest:
    """A new request for MEMBERSHIP's organization (owners and admins only) with 1 to
    MAX_FILES documents already checked by content. Refused while another request is
    open or the organization is verified. Atomic; owners and operator are emailed."""
    _check_submitter(membership)
    if not 1 <= len(files) <= MAX_FILES:
        raise VerificationRefused(
            _("Attach between 1 and %(count)d documents.") % {"count": MAX_FILES}
        )
    now = now or timezone.now()
    with transaction.atomic():
        organization = Organization.objects.select_for_update().get(pk=membership.organization_id)
        if organization.verified_at is not None:
            raise VerificationRefused(_("This organization is already verified."))
        if organization.verification_requests.filter(
            state__in=VerificationRequest.OPEN_STATES
        ).exists():
            raise VerificationRefused(
                _("This organization already has a verification request under way.")
            )
        verification = VerificationRequest.objects.create(
            organization=organization,
            submitted_by_id=membership.user_id,
            state=State.SUBMITTED,
            created_at=now,
            submitted_at=now,
            **asdict(details),
        )
        _documents_add(verification, files, now)
        _audit(
            step="submitted",
            organization=organization,
            verification=verification,
            user=membership.user,
            request=request,
            documents=len(files),
        )
        _after_commit("submitted", organization, verification)
    return verification


def _locked_open(verification: VerificationRequest, *states: str) -> VerificationRequest:
    locked = VerificationRequest.objects.select_for_update().get(pk=verification.pk)
    if locked.state not in states:
        raise VerificationRefused(
            _("This verification request is %(state)s: it cannot be changed that way.")
            % {"state": locked.get_state_display().lower()}
        )
    return locked


def verification_resubmit(
    *,
    membership: Membership,
    verification: VerificationRequest,
    details: VerificationDetails,
    note: str,
    files: Sequence[CheckedFile] = (),
    request: HttpRequest | None = None,
    now: dt.datetime | None = None,
) -> VerificationRequest:
    """The answer to staff's request for more information: the details (possibly
    corrected), a note and more documents (MAX_FILES in all); the request is under review
    again. Owners and admins only."""
    _check_submitter(membership)
    if verification.organization_id != membership.organization_id:
        raise VerificationRefused(_("This verification request is not your organization's."))
    now = now or timezone.now()
    with transaction.atomic():
        locked = _locked_open(verification, State.MORE_INFO)
        if locked.documents.count() + len(files) > MAX_FILES:
            raise VerificationRefused(
                _("A verification request has at most %(count)d documents.") % {"count": MAX_FILES}
            )
        for field, value in asdict(details).items():
            setattr(locked, field, value)
        locked.customer_note = note[:MESSAGE_MAX]
        locked.state = State.SUBMITTED
        locked.submitted_at = now
        locked.save()
        _documents_add(locked, files, now)
        _audit(
            step="resubmitted",
            organization=membership.organization,
            verification=locked,
            user=membership.user,
            request=request,
            documents=len(files),
        )
        _after_commit("resubmitted", membership.organization, locked)
    return locked


def verification_withdraw(
    *,
    membership: Membership,
    verification: VerificationRequest,
    request: HttpRequest | None = None,
    now: dt.datetime | None = None,
) -> VerificationRequest:
    """The customer takes an open request back; its documents' retention starts now."""
    _check_submitter(membership)
    if verification.organization_id != membership.organization_id:
        raise VerificationRefused(_("This verification request is not your organization's."))
    now = now or timezone.now()
    with transaction.atomic():
        locked = _locked_open(verification, *VerificationRequest.OPEN_STATES)
        locked.state = State.WITHDRAWN
        locked.decided_at = now
        locked.save(update_fields=["state", "decided_at"])
        _audit(
            step="withdrawn",
            organization=membership.organization,
            verification=locked,
            user=membership.user,
            request=request,
        )
        _after_commit("withdrawn", membership.organization, locked)
    return locked


def _check_staff(staff: User) -> None:
    if not (staff.is_staff and staff.is_active):
        raise VerificationRefused(_("Only staff review verification requests."))


def _staff_step(
    *,
    verification: VerificationRequest,
    staff: User,
    state: str,
    step: str,
    message: str,
    from_states: Sequence[str],
    now: dt.datetime | None,
) -> VerificationRequest:
    _check_staff(staff)
    now = now or timezone.now()
    with transaction.atomic():
        organization = Organization.objects.select_for_update().get(pk=verification.organization_id)
        locked = _locked_open(verification, *from_states)
        locked.state = state
        locked.staff_message = message[:MESSAGE_MAX]
        locked.reviewed_by = staff
        if state in (State.APPROVED, State.REJECTED):
            locked.decided_at = now
        locked.save(update_fields=["state", "staff_message", "reviewed_by", "decided_at"])
        if state == State.APPROVED:
            organization.verified_at = now
            organization.save(update_fields=["verified_at"])
        _audit(step=step, organization=organization, verification=locked, actor=staff)
        _after_commit(step, organization, locked)
    verification.refresh_from_db()
    return locked


def verification_approve(
    *, verification: VerificationRequest, staff: User, now: dt.datetime | None = None
) -> VerificationRequest:
    """Staff approve a request under review: the organization is verified from NOW."""
    return _staff_step(
        verification=verification,
        staff=staff,
        state=State.APPROVED,
        step="approved",
        message="",
        from_states=(State.SUBMITTED,),
        now=now,
    )


def _required(text: str, what: str) -> str:
    text = text.strip()
    if not text:
        raise VerificationRefused(what)
    return text


def verification_reject(
    *, verification: VerificationRequest, staff: User, reason: str, now: dt.datetime | None = None
) -> VerificationRequest:
    """Staff reject an open request with a reason, which the owners are sent."""
    return _staff_step(
        verification=verification,
        staff=staff,
        state=State.REJECTED,
        step="rejected",
        message=_required(reason, _("A rejection needs a reason.")),
        from_states=VerificationRequest.OPEN_STATES,
        now=now,
    )


def verification_request_more(
    *,
    verification: VerificationRequest,
    staff: User,
    message: str,
    now: dt.datetime | None = None,
) -> VerificationRequest:
    """Staff ask for more: MESSAGE says what; the owners and admins then answer and
    resubmit from the portal."""
    return _staff_step(
        verification=verification,
        staff=staff,
        state=State.MORE_INFO,
        step="more_info_requested",
        message=_required(message, _("Say what more information is needed.")),
        from_states=(State.SUBMITTED,),
        now=now,
    )


def organization_verification_revoke(
    *, organization: Organization, staff: User, reason: str, now: dt.datetime | None = None
) -> Organization:
    """Staff withdraw an organization's verified status with a reason (audited, owners
    emailed). What it unlocked stops at once; credit lines already granted stay until
    staff change them. The organization may submit a new request."""
    _check_staff(staff)
    reason = _required(reason, _("Revoking a verification needs a reason."))
    with transaction.atomic():
        locked = Organization.objects.select_for_update().get(pk=organization.pk)
        if locked.verified_at is None:
            raise VerificationRefused(_("This organization is not verified."))
        verified_at = locked.verified_at
        locked.verified_at = None
        locked.save(update_fields=["verified_at"])
        _audit(
            step="revoked",
            organization=locked,
            verification=None,
            actor=staff,
            reason=reason[:500],
            verified_at=verified_at.isoformat(),
        )
        _after_commit("revoked", locked, None)
    organization.verified_at = None
    return locked


def verification_documents_purge(*, now: dt.datetime | None = None, days: int | None = None) -> int:
    """Delete the bytes of the documents of requests closed at least DAYS (default
    VERIFICATION_DOCUMENT_RETENTION_DAYS) ago; their name, type, size and hash stay.
    Returns how many were purged; running it again purges nothing more."""
    now = now or timezone.now()
    days = settings.VERIFICATION_DOCUMENT_RETENTION_DAYS if days is None else days
    return VerificationDocument.objects.filter(
        purged_at__isnull=True,
        request__decided_at__lte=now - dt.timedelta(days=days),
    ).update(data=None, purged_at=now)
