"""The portal's verification page: the organization's status and latest request, the form
to submit one (owners and admins), the answer to a request for more information, and
withdrawal. Every member sees the status; only owners and admins act."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from accounts.access import Capability, capability_required
from accounts.http import PortalRequest
from accounts.models import Membership, VerificationRequest
from accounts.verification.exceptions import VerificationRefused
from accounts.verification.forms import ResubmitForm, VerificationForm
from accounts.verification.selectors import (
    verification_can_submit,
    verification_documents,
    verification_latest,
)
from accounts.verification.services import (
    VerificationDetails,
    verification_resubmit,
    verification_submit,
    verification_withdraw,
)

_DETAIL_FIELDS = tuple(VerificationDetails.__dataclass_fields__)


def _form_for(
    request: PortalRequest, latest: VerificationRequest | None, membership: Membership
) -> VerificationForm | None:
    """The form this member may fill in now, bound to the POST if there is one."""
    if not verification_can_submit(membership=membership):
        return None
    post = request.method == "POST"
    data, files = (request.POST, request.FILES) if post else (None, None)
    if latest is not None and latest.state == VerificationRequest.State.MORE_INFO:
        initial = {f: getattr(latest, f) for f in _DETAIL_FIELDS}
        return ResubmitForm(data, files, initial=initial)
    if membership.organization.verified_at is None and (latest is None or not latest.is_open):
        return VerificationForm(data, files)
    return None


@capability_required(Capability.VIEW_ORG)
@require_http_methods(["GET", "POST"])
def verification_page(request: PortalRequest) -> HttpResponse:
    membership = request.membership
    latest = verification_latest(organization=membership.organization)
    form = _form_for(request, latest, membership)
    status = 200
    if request.method == "POST":
        if not verification_can_submit(membership=membership):
            raise PermissionDenied(_("Only the organization's owners and admins can do this."))
        if form is None:
            messages.error(request, _("There is nothing to submit now."))
            return redirect("verification")
        if form.is_valid():
            try:
                _save(request, membership, latest, form)
            except VerificationRefused as exc:
                messages.error(request, str(exc))
            else:
                messages.success(request, _("Sent: our staff will review it."))
            return redirect("verification")
        status = 400
    context = {
        "section": "organization",
        "organization": membership.organization,
        "latest": latest,
        "documents": verification_documents(verification=latest) if latest else None,
        "form": form,
        "resubmit": isinstance(form, ResubmitForm),
        "can_submit": verification_can_submit(membership=membership),
    }
    return render(request, "accounts/verification.html", context, status=status)


def _save(
    request: PortalRequest,
    membership: Membership,
    latest: VerificationRequest | None,
    form: VerificationForm,
) -> None:
    data = form.cleaned_data
    if isinstance(form, ResubmitForm) and latest is not None:
        verification_resubmit(
            membership=membership,
            verification=latest,
            details=form.details(),
            note=data["note"],
            files=data["documents"],
            request=request,
        )
    else:
        verification_submit(
            membership=membership, details=form.details(), files=data["documents"], request=request
        )


@capability_required(Capability.VIEW_ORG)
@require_POST
def verification_withdraw_view(request: PortalRequest, request_id: int) -> HttpResponse:
    membership = request.membership
    verification = VerificationRequest.objects.filter(
        pk=request_id, organization_id=membership.organization_id
    ).first()
    if verification is None:
        raise Http404
    if not verification_can_submit(membership=membership):
        raise PermissionDenied(_("Only the organization's owners and admins can do this."))
    try:
        verification_withdraw(membership=membership, verification=verification, request=request)
    except VerificationRefused as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, _("Verification request withdrawn."))
    return redirect("verification")
