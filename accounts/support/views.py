"""Portal pages for work orders: the list, a new order, and one order's thread with the
reply form, close and reopen. Every member may open orders; who sees which is decided by
selectors.workorders_visible_to."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import content_disposition_header
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.access import Capability, capability_required
from accounts.http import PortalRequest
from accounts.models import WorkOrder
from accounts.support.attachments import attachment_bytes
from accounts.support.exceptions import WorkOrderRefused
from accounts.support.forms import ReplyForm, WorkOrderForm
from accounts.support.selectors import (
    attachment_for_customer,
    public_thread,
    workorders_visible_to,
)
from accounts.support.services import (
    REOPEN_DAYS,
    workorder_close,
    workorder_open,
    workorder_reopen,
    workorder_reply,
)
from sealed.fields import reveal


def _order(request: PortalRequest, order_id: int) -> WorkOrder:
    order = workorders_visible_to(membership=request.membership).filter(pk=order_id).first()
    if order is None:
        raise Http404
    return order


@capability_required(Capability.VIEW_ORG)
@require_GET
def support_list(request: PortalRequest) -> HttpResponse:
    orders = workorders_visible_to(membership=request.membership)[:200]
    return render(request, "support/list.html", {"section": "support", "orders": orders})


@capability_required(Capability.VIEW_ORG)
@require_http_methods(["GET", "POST"])
def support_new(request: PortalRequest) -> HttpResponse:
    membership = request.membership
    if request.method == "POST":
        form = WorkOrderForm(request.POST, request.FILES, membership=membership)
        if form.is_valid():
            data = form.cleaned_data
            order = workorder_open(
                membership=membership,
                category=data["category"],
                subject=data["subject"],
                body=data["body"],
                files=data["attachments"],
                request_ids=data["request_ids"],
            )
            messages.success(request, _("Work order #%(number)d opened.") % {"number": order.pk})
            return redirect("support-detail", order.pk)
        status = 400
    else:
        form = WorkOrderForm(membership=membership, initial=_initial(request))
        status = 200
    return render(request, "support/new.html", {"section": "support", "form": form}, status=status)


def _initial(request: PortalRequest) -> dict[str, str]:
    # The logs page may link here with ?request=<id> for a failing call.
    rid = request.GET.get("request", "")[:64]
    return {"request_ids": rid} if rid else {}


def _detail(request: PortalRequest, order: WorkOrder, form: ReplyForm, status: int) -> HttpResponse:
    context = {
        "section": "support",
        "order": order,
        "thread": public_thread(work_order=order),
        "form": form,
        "done": order.status in (WorkOrder.Status.RESOLVED, WorkOrder.Status.CLOSED),
        "reopen_days": REOPEN_DAYS,
    }
    return render(request, "support/detail.html", context, status=status)


@capability_required(Capability.VIEW_ORG)
@require_http_methods(["GET", "POST"])
def support_detail(request: PortalRequest, order_id: int) -> HttpResponse:
    order = _order(request, order_id)
    if request.method != "POST":
        return _detail(request, order, ReplyForm(), 200)
    form = ReplyForm(request.POST, request.FILES)
    if not form.is_valid():
        return _detail(request, order, form, 400)
    try:
        workorder_reply(
            work_order=order,
            author=request.user,
            body=form.cleaned_data["body"],
            files=form.cleaned_data["attachments"],
        )
    except WorkOrderRefused as exc:
        messages.error(request, str(exc))
        return redirect("support-detail", order.pk)
    messages.success(request, _("Reply sent."))
    return redirect("support-detail", order.pk)


@capability_required(Capability.VIEW_ORG)
@require_POST
def support_close(request: PortalRequest, order_id: int) -> HttpResponse:
    workorder_close(work_order=_order(request, order_id))
    messages.success(request, _("Work order closed."))
    return redirect("support-detail", order_id)


@capability_required(Capability.VIEW_ORG)
@require_POST
def support_reopen(request: PortalRequest, order_id: int) -> HttpResponse:
    try:
        workorder_reopen(work_order=_order(request, order_id))
    except WorkOrderRefused as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, _("Work order reopened."))
    return redirect("support-detail", order_id)


@capability_required(Capability.VIEW_ORG)
@require_GET
def support_attachment(request: PortalRequest, order_id: int, attachment_id: int) -> HttpResponse:
    attachment = attachment_for_customer(
        membership=request.membership, work_order_id=order_id, attachment_id=attachment_id
    )
    if attachment is None:
        raise Http404
    return attachment_response(attachment.name, attachment.content_type, reveal(attachment.data))


def attachment_response(name: str, content_type: str, encoded: str) -> HttpResponse:
    """The decrypted file as a download: never rendered inline, never sniffed, not cached."""
    response = HttpResponse(attachment_bytes(encoded), content_type=content_type)
    response["Content-Disposition"] = content_disposition_header(True, name) or "attachment"
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-store"
    return response
