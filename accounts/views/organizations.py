"""Portal pages for organizations: the active one's members, invitations and caps, creating
a team, switching the active organization, and accepting an invitation."""

from __future__ import annotations

from typing import cast

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from accounts.access import (
    Capability,
    capability_required,
    invoice_details_editable,
    organization_activate,
    role_allows,
)
from accounts.exceptions import AccountsError
from accounts.forms import InvoiceDetailsForm, OrganizationCapsForm
from accounts.http import PortalRequest
from accounts.models import Membership, Organization, User
from accounts.selectors import (
    invitation_by_token,
    invitations_pending,
    members_of,
    memberships_of,
)
from accounts.services import (
    CAP_FIELDS,
    INVOICE_FIELDS,
    invitation_accept,
    invitation_create,
    invitation_revoke,
    membership_remove,
    membership_set_role,
    organization_create,
    organization_invoice_details_set,
    organization_rename,
    organization_update,
)
from billing.cap_display import cap_rows, organization_cap_uses


def _caps_form(organization: Organization) -> OrganizationCapsForm:
    initial = {name: getattr(organization, name) for name in CAP_FIELDS}
    return OrganizationCapsForm(initial={**initial, "plan_fallback": organization.plan_fallback})


def _org_page(
    request: PortalRequest,
    *,
    caps_form: OrganizationCapsForm | None = None,
    invoice_form: InvoiceDetailsForm | None = None,
    status: int = 200,
) -> HttpResponse:
    membership = request.membership
    org = membership.organization
    can_manage = role_allows(membership.role, Capability.MANAGE_MEMBERS)
    can_manage_org = role_allows(membership.role, Capability.MANAGE_ORG)
    context = {
        "section": "organization",
        "membership": membership,
        "organization": org,
        "memberships": memberships_of(user=request.user),
        "can_manage_members": can_manage,
        "can_manage_org": can_manage_org,
        "members": members_of(organization=org) if can_manage else None,
        "invitations": invitations_pending(organization=org) if can_manage else None,
        "roles": Membership.Role.choices,
        "organization_caps": cap_rows(organization_cap_uses(organization=org)),
        "caps_form": (caps_form or _caps_form(org)) if can_manage_org else None,
        "invoice_form": (
            invoice_form or InvoiceDetailsForm(initial={f: getattr(org, f) for f in INVOICE_FIELDS})
        )
        if invoice_details_editable(membership.role)
        else None,
    }
    return render(request, "accounts/org.html", context, status=status)


@capability_required(Capability.VIEW_ORG)
def org_page(request: PortalRequest) -> HttpResponse:
    if request.method == "POST":  # the invoice details form posts to the page it is on
        return _invoice_details_save(request)
    return _org_page(request)


def _invoice_details_save(request: PortalRequest) -> HttpResponse:
    """The invoice details on receipts, statements and credit notes (owners, admins and
    billing members)."""
    membership = request.membership
    if not invoice_details_editable(membership.role):
        raise PermissionDenied(_("your role in this organization does not allow this"))
    form = InvoiceDetailsForm(request.POST)
    if not form.is_valid():
        return _org_page(request, invoice_form=form, status=400)
    organization_invoice_details_set(
        organization=membership.organization,
        details=form.cleaned_data,
        actor=request.user,
        request=request,
    )
    messages.success(request, _("Invoice details saved."))
    return redirect(reverse("portal-org") + "#invoice-details")


@capability_required(Capability.MANAGE_ORG)
@require_POST
def org_caps(request: PortalRequest) -> HttpResponse:
    """The organization's caps and plan fallback (owners, like its other settings)."""
    form = OrganizationCapsForm(request.POST)
    if not form.is_valid():
        return _org_page(request, caps_form=form, status=400)
    try:
        organization_update(
            organization=request.membership.organization,
            actor=request.user,
            request=request,
            plan_fallback=form.cleaned_data["plan_fallback"],
            **form.caps(),
        )
    except AccountsError as exc:
        messages.error(request, str(exc))
        return _org_page(request, caps_form=form, status=400)
    messages.success(request, _("Organization caps saved."))
    return redirect("portal-org")


def _back(request: HttpRequest, default: str = "portal-org") -> HttpResponse:
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return redirect(target)
    return redirect(default)


@login_required
@require_POST
def org_switch(request: HttpRequest) -> HttpResponse:
    try:
        org_id = int(request.POST.get("organization", ""))
    except ValueError:
        raise Http404 from None
    membership = organization_activate(request, organization_id=org_id)
    messages.success(
        request, _("Now working in %(name)s.") % {"name": membership.organization.name}
    )
    return _back(request)


@login_required
@require_POST
def org_create(request: HttpRequest) -> HttpResponse:
    try:
        org = organization_create(name=request.POST.get("name", ""), owner=cast(User, request.user))
    except AccountsError as exc:
        messages.error(request, str(exc))
        return redirect("portal-org")
    organization_activate(request, organization_id=org.pk)
    messages.success(request, _("Organization %(name)s created.") % {"name": org.name})
    return redirect("portal-org")


@capability_required(Capability.MANAGE_ORG)
@require_POST
def org_rename(request: PortalRequest) -> HttpResponse:
    try:
        organization_rename(
            organization=request.membership.organization, name=request.POST.get("name", "")
        )
    except AccountsError as exc:
        messages.error(request, str(exc))
    return redirect("portal-org")


@capability_required(Capability.MANAGE_MEMBERS)
@require_POST
def org_invite(request: PortalRequest) -> HttpResponse:
    email = request.POST.get("email", "")
    try:
        invitation_create(
            actor=request.membership,
            email=email,
            role=request.POST.get("role", Membership.Role.MEMBER),
        )
    except AccountsError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, _("Invitation sent to %(email)s.") % {"email": email})
    return redirect("portal-org")


@capability_required(Capability.MANAGE_MEMBERS)
@require_POST
def org_invitation_revoke(request: PortalRequest, invitation_id: int) -> HttpResponse:
    org = request.membership.organization
    invitation_revoke(
        invitation=get_object_or_404(invitations_pending(organization=org), pk=invitation_id)
    )
    messages.success(request, _("Invitation withdrawn."))
    return redirect("portal-org")


def _member(request: PortalRequest, user_id: int) -> Membership:
    org = request.membership.organization
    return get_object_or_404(members_of(organization=org), user_id=user_id)


@capability_required(Capability.MANAGE_MEMBERS)
@require_POST
def org_member_role(request: PortalRequest, user_id: int) -> HttpResponse:
    try:
        membership_set_role(
            actor=request.membership,
            member=_member(request, user_id),
            role=request.POST.get("role", ""),
        )
    except AccountsError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, _("Role changed."))
    return redirect("portal-org")


@capability_required(Capability.MANAGE_MEMBERS)
@require_POST
def org_member_remove(request: PortalRequest, user_id: int) -> HttpResponse:
    try:
        membership_remove(actor=request.membership, member=_member(request, user_id))
    except AccountsError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, _("Member removed; their keys here are revoked."))
    return redirect("portal-org")


@capability_required(Capability.VIEW_ORG)
@require_POST
def org_leave(request: PortalRequest) -> HttpResponse:
    membership = request.membership
    try:
        membership_remove(actor=membership, member=membership)
    except AccountsError as exc:
        messages.error(request, str(exc))
        return redirect("portal-org")
    messages.success(request, _("You left %(name)s.") % {"name": membership.organization.name})
    return redirect("portal-org")


@login_required
@require_http_methods(["GET", "POST"])
def invitation_accept_page(request: HttpRequest, token: str) -> HttpResponse:
    invitation = invitation_by_token(token=token)
    user = cast(User, request.user)
    if request.method == "POST":
        try:
            membership = invitation_accept(token=token, user=user)
        except AccountsError as exc:
            messages.error(request, str(exc))
        else:
            organization_activate(request, organization_id=membership.organization_id)
            messages.success(
                request,
                _("Welcome to %(name)s.") % {"name": membership.organization.name},
            )
            return redirect("portal-org")
    usable = invitation is not None and invitation.is_pending()
    matches = usable and invitation is not None and (invitation.email.lower() == user.email.lower())
    response = render(
        request,
        "accounts/invitation.html",
        {"invitation": invitation if usable else None, "matches": matches},
        status=200 if matches else 400 if usable else 404,
    )
    response["Referrer-Policy"] = "no-referrer"  # the token is in this page's URL
    return response
