"""Writes on work orders: open, reply, note, close, reopen, assign, set status, erase.

Every function locks the order's row, so two replies or a reply and a status change never
interleave; emails go out after the commit (accounts/support/emails.py).

Statuses: a new order is `open`; a staff reply makes it `waiting on customer`, a customer's
reply `waiting on staff`. Staff set any status; customers close an order, and reopen it
within REOPEN_DAYS of its resolution (`resolved_at`: when it was resolved or closed).
`waiting_since` (set while the order waits for staff) orders the admin's queue;
`first_response_at` is the first staff reply that the customer sees.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import (
    Membership,
    Organization,
    User,
    WorkOrder,
    WorkOrderAttachment,
    WorkOrderMessage,
)
from accounts.support.attachments import CheckedFile
from accounts.support.emails import notify_customer, notify_staff
from accounts.support.exceptions import WorkOrderRefused

REOPEN_DAYS = 14
ERASED_TEXT = "[removed: the author deleted their account]"

_WAITING_ON_STAFF = (WorkOrder.Status.OPEN, WorkOrder.Status.WAITING_ON_STAFF)
_DONE = (WorkOrder.Status.RESOLVED, WorkOrder.Status.CLOSED)


def _locked(work_order: WorkOrder) -> WorkOrder:
    return WorkOrder.objects.select_for_update().get(pk=work_order.pk)


def _message_add(
    *,
    work_order: WorkOrder,
    author: User,
    body: str,
    from_staff: bool,
    internal: bool = False,
    files: Sequence[CheckedFile] = (),
    now: dt.datetime,
) -> WorkOrderMessage:
    message = WorkOrderMessage.objects.create(
        work_order=work_order,
        author=author,
        from_staff=from_staff,
        internal=internal,
        body=body,
        created_at=now,
    )
    for file in files:
        WorkOrderAttachment.objects.create(
            message=message,
            name=file.name,
            content_type=file.content_type,
            size=file.size,
            data=file.encoded(),
            created_at=now,
        )
    return message


def _set_status(work_order: WorkOrder, status: str, now: dt.datetime) -> None:
    if status in _WAITING_ON_STAFF:
        work_order.waiting_since = work_order.waiting_since or now
    else:
        work_order.waiting_since = None
    if status in _DONE:
        work_order.resolved_at = work_order.resolved_at or now
    else:
        work_order.resolved_at = None
    work_order.status = status
    work_order.updated_at = now


def workorder_open(
    *,
    membership: Membership,
    category: str,
    subject: str,
    body: str,
    files: Sequence[CheckedFile] = (),
    request_ids: Sequence[str] = (),
    now: dt.datetime | None = None,
) -> WorkOrder:
    """A new order in MEMBERSHIP's organization, opened by its user, with its first message.
    REQUEST_IDS must already be checked against the logs the member may see (the form does:
    logs.selectors.request_ids_unknown). Atomic; staff are emailed after the commit."""
    now = now or timezone.now()
    with transaction.atomic():
        work_order = WorkOrder.objects.create(
            organization_id=membership.organization_id,
            opened_by_id=membership.user_id,
            category=category,
            subject=subject,
            request_ids=list(dict.fromkeys(request_ids)),
            status=WorkOrder.Status.OPEN,
            created_at=now,
            updated_at=now,
            waiting_since=now,
        )
        _message_add(
            work_order=work_order,
            author=membership.user,
            body=body,
            from_staff=False,
            files=files,
            now=now,
        )
        transaction.on_commit(lambda: notify_staff(work_order=work_order, new=True))
    return work_order


def workorder_reply(
    *,
    work_order: WorkOrder,
    author: User,
    body: str,
    files: Sequence[CheckedFile] = (),
    now: dt.datetime | None = None,
) -> WorkOrderMessage:
    """A customer's reply (the caller checked that AUTHOR may see the order). Refused on a
    resolved or closed order, which must be reopened first. Staff are emailed."""
    now = now or timezone.now()
    with transaction.atomic():
        locked = _locked(work_order)
        if locked.status in _DONE:
            raise WorkOrderRefused(_("This work order is closed: reopen it to reply."))
        message = _message_add(
            work_order=locked, author=author, body=body, from_staff=False, files=files, now=now
        )
        # Before any staff answer it stays `open`; afterwards it waits on staff again.
        if locked.status != WorkOrder.Status.OPEN:
            _set_status(locked, WorkOrder.Status.WAITING_ON_STAFF, now)
        locked.updated_at = now
        locked.save(update_fields=["status", "waiting_since", "resolved_at", "updated_at"])
        transaction.on_commit(lambda: notify_staff(work_order=locked, new=False))
    return message


def workorder_staff_reply(
    *,
    work_order: WorkOrder,
    staff: User,
    body: str,
    internal: bool = False,
    now: dt.datetime | None = None,
) -> WorkOrderMessage:
    """A staff answer, emailed to the customer, or with INTERNAL a note that the customer
    never sees and nobody is emailed about. The first answer sets `first_response_at`; an
    answer to an order waiting on staff makes it wait on the customer."""
    if not staff.is_staff:
        raise WorkOrderRefused(_("Only staff answer work orders here."))
    now = now or timezone.now()
    with transaction.atomic():
        locked = _locked(work_order)
        message = _message_add(
            work_order=locked, author=staff, body=body, from_staff=True, internal=internal, now=now
        )
        if not internal:
            locked.first_response_at = locked.first_response_at or now
            if locked.status in _WAITING_ON_STAFF:
                _set_status(locked, WorkOrder.Status.WAITING_ON_CUSTOMER, now)
            locked.updated_at = now
            locked.save(
                update_fields=[
                    "status",
                    "waiting_since",
                    "resolved_at",
                    "updated_at",
                    "first_response_at",
                ]
            )
            transaction.on_commit(lambda: notify_customer(work_order=locked))
    work_order.refresh_from_db()
    return message


def workorder_set_status(
    *, work_order: WorkOrder, status: str, now: dt.datetime | None = None
) -> WorkOrder:
    """Staff: any status. Resolving or closing stamps `resolved_at` (kept if already
    set); any other status clears it."""
    if status not in WorkOrder.Status.values:
        raise WorkOrderRefused(_("Unknown status."))
    now = now or timezone.now()
    with transaction.atomic():
        locked = _locked(work_order)
        if locked.status != status:
            _set_status(locked, status, now)
            locked.save(update_fields=["status", "waiting_since", "resolved_at", "updated_at"])
    return locked


def workorder_close(*, work_order: WorkOrder, now: dt.datetime | None = None) -> WorkOrder:
    """The customer is done with it. Closing a closed order changes nothing."""
    return workorder_set_status(work_order=work_order, status=WorkOrder.Status.CLOSED, now=now)


def workorder_reopen(*, work_order: WorkOrder, now: dt.datetime | None = None) -> WorkOrder:
    """The customer opens a resolved or closed order again, within REOPEN_DAYS of its
    resolution; it waits on staff again and the resolution time is cleared."""
    now = now or timezone.now()
    with transaction.atomic():
        locked = _locked(work_order)
        if locked.status not in _DONE:
            return locked
        resolved = locked.resolved_at or locked.updated_at
        if now - resolved > dt.timedelta(days=REOPEN_DAYS):
            raise WorkOrderRefused(
                _(
                    "Work orders can be reopened within %(days)d days of their resolution: "
                    "please open a new one."
                )
                % {"days": REOPEN_DAYS}
            )
        _set_status(locked, WorkOrder.Status.WAITING_ON_STAFF, now)
        locked.save(update_fields=["status", "waiting_since", "resolved_at", "updated_at"])
    return locked


def workorder_assign(*, work_order: WorkOrder, assignee: User | None) -> WorkOrder:
    """Give the order to a staff user (None: to nobody)."""
    if assignee is not None and not (assignee.is_staff and assignee.is_active):
        raise WorkOrderRefused(_("Work orders are assigned to active staff users only."))
    with transaction.atomic():
        locked = _locked(work_order)
        locked.assignee = assignee
        locked.save(update_fields=["assignee"])
    return locked


def workorders_erase_for(*, user: User, personal: Sequence[Organization]) -> None:
    """Account deletion (call inside its transaction): delete the orders of USER's
    PERSONAL organizations; elsewhere blank USER's messages, drop their attachments, clear
    them as author and replace the subjects of the orders they opened. Answers they wrote
    as staff are the operator's record: they stay, without their author."""
    WorkOrder.objects.filter(organization__in=personal).delete()
    theirs = WorkOrderMessage.objects.filter(author=user, from_staff=False)
    WorkOrderAttachment.objects.filter(message__in=theirs).delete()
    theirs.update(body=ERASED_TEXT, author=None)
    WorkOrderMessage.objects.filter(author=user).update(author=None)
    WorkOrder.objects.filter(opened_by=user).update(subject=ERASED_TEXT[:200], opened_by=None)
