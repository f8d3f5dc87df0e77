"""Reads on work orders, filtered by who may see them (see the package docstring)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import F, Prefetch, QuerySet

from accounts.access import Capability, role_allows
from accounts.models import Membership, User, WorkOrder, WorkOrderAttachment, WorkOrderMessage


def sees_all_workorders(*, membership: Membership) -> bool:
    """Owners and admins (the roles that manage members) see all the organization's."""
    return role_allows(membership.role, Capability.MANAGE_MEMBERS)


def workorders_visible_to(*, membership: Membership) -> QuerySet[WorkOrder]:
    orders = WorkOrder.objects.filter(organization_id=membership.organization_id)
    if not sees_all_workorders(membership=membership):
        orders = orders.filter(opened_by_id=membership.user_id)
    return orders.select_related("opened_by").order_by("-updated_at", "-pk")


def public_thread(*, work_order: WorkOrder) -> QuerySet[WorkOrderMessage]:
    """The messages the customer sees: all but internal notes, with attachments' names."""
    return (
        work_order.messages.filter(internal=False)
        .select_related("author")
        .prefetch_related(
            Prefetch("attachments", queryset=WorkOrderAttachment.objects.defer("data"))
        )
    )


def staff_thread(*, work_order: WorkOrder) -> QuerySet[WorkOrderMessage]:
    return work_order.messages.select_related("author").prefetch_related(
        Prefetch("attachments", queryset=WorkOrderAttachment.objects.defer("data"))
    )


def attachment_for_customer(
    *, membership: Membership, work_order_id: int, attachment_id: int
) -> WorkOrderAttachment | None:
    orders = workorders_visible_to(membership=membership)
    return (
        WorkOrderAttachment.objects.filter(
            pk=attachment_id,
            message__work_order_id=work_order_id,
            message__work_order__in=orders,
            message__internal=False,
        )
        .select_related("message")
        .first()
    )


# The admin's queue: longest waiting on staff first, then the others by latest activity.
QUEUE_ORDER = (F("waiting_since").asc(nulls_last=True), "-updated_at", "pk")


def workorder_queue() -> QuerySet[WorkOrder]:
    return WorkOrder.objects.select_related("organization", "assignee").order_by(*QUEUE_ORDER)


def duration(start: dt.datetime, end: dt.datetime | None) -> dt.timedelta | None:
    return None if end is None else end - start


def workorders_export(*, user: User) -> list[dict[str, Any]]:
    """For the data export: the orders USER opened with their threads (internal notes
    left out), and the orders where USER wrote, with USER's own messages only.
    Attachments by name, type and size; never their bytes."""
    orders = (
        (WorkOrder.objects.filter(opened_by=user) | WorkOrder.objects.filter(messages__author=user))
        .distinct()
        .order_by("pk")
    )
    exported = []
    for order in orders:
        messages = order.messages.filter(internal=False)
        if order.opened_by_id != user.pk:
            messages = messages.filter(author=user)
        exported.append(
            {
                "id": order.pk,
                "organization_id": order.organization_id,
                "opened_by_you": order.opened_by_id == user.pk,
                "category": order.category,
                "subject": order.subject,
                "status": order.status,
                "request_ids": order.request_ids,
                "created_at": order.created_at,
                "resolved_at": order.resolved_at,
                "messages": [
                    {
                        "from": "you"
                        if m.author_id == user.pk
                        else ("staff" if m.from_staff else "member"),
                        "body": m.body,
                        "created_at": m.created_at,
                        "attachments": [
                            {"name": a.name, "content_type": a.content_type, "size": a.size}
                            for a in m.attachments.all()
                        ],
                    }
                    for m in messages.prefetch_related(
                        Prefetch("attachments", queryset=WorkOrderAttachment.objects.defer("data"))
                    )
                ],
            }
        )
    return exported
