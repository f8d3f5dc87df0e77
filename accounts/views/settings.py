"""/dashboard/settings/: profile, sessions, sign-in providers, MFA, security events and the
privacy rights (download my data, delete my account, delete the organization's request logs)."""

from __future__ import annotations

from typing import cast

from allauth.account.decorators import reauthentication_required
from allauth.mfa.utils import is_mfa_enabled
from allauth.socialaccount.adapter import get_adapter as get_social_adapter
from allauth.socialaccount.models import SocialAccount
from allauth.usersessions.models import UserSession
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import AnonymousUser
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.access import Capability, capability_required, role_allows
from accounts.audit import audit_events_for_organization, audit_events_for_user, audit_record
from accounts.exceptions import AccountDeletionBlocked
from accounts.forms import ProfileForm
from accounts.http import PortalRequest
from accounts.models import AuditEvent, DataExport, User
from accounts.privacy import account_delete, data_export_request, user_sessions_end
from accounts.services import organization_set_require_mfa
from logs.services import request_logs_delete_for_organization

EVENTS_SHOWN = 50


def _user(request: HttpRequest) -> User:
    return cast(User, request.user)


@capability_required(Capability.VIEW_ORG)
def settings_index(request: PortalRequest) -> HttpResponse:
    user = _user(request)
    organization = request.organization
    membership = request.membership
    can_manage_org = role_allows(membership.role, Capability.MANAGE_ORG)
    linked = list(SocialAccount.objects.filter(user=user).order_by("provider"))
    context = {
        "section": "settings",
        "profile_form": ProfileForm(instance=user),
        "sessions": UserSession.objects.purge_and_list(user),
        "current_session_key": request.session.session_key,
        "linked_accounts": linked,
        "providers": get_social_adapter().list_providers(request),
        "mfa_enabled": is_mfa_enabled(user),
        "events": audit_events_for_user(user=user)[:EVENTS_SHOWN],
        "can_manage_org": can_manage_org,
        "org_events": (
            audit_events_for_organization(organization=organization)[:EVENTS_SHOWN]
            if can_manage_org
            else []
        ),
        "exports": DataExport.objects.filter(user=user, expires_at__gt=timezone.now()).order_by(
            "-created_at"
        ),
    }
    return render(request, "accounts/settings.html", context)


@require_POST
@login_required
def profile_update(request: HttpRequest) -> HttpResponse:
    form = ProfileForm(request.POST, instance=_user(request))
    if form.is_valid():
        form.save()
        messages.success(request, _("Profile saved."))
    else:
        messages.error(request, _("The profile could not be saved."))
    return HttpResponseRedirect(reverse("settings"))


@require_POST
@login_required
def sessions_end_others(request: HttpRequest) -> HttpResponse:
    ended = user_sessions_end(user=_user(request), keep_session_key=request.session.session_key)
    audit_record(kind=AuditEvent.Kind.SESSIONS_ENDED, request=request, ended=ended)
    messages.success(request, _("Signed out of every other session."))
    return HttpResponseRedirect(reverse("settings"))


@require_POST
@login_required
def export_request(request: HttpRequest) -> HttpResponse:
    data_export_request(user=_user(request))
    messages.success(
        request, _("Your archive is being prepared; it will be listed here when it is ready.")
    )
    return HttpResponseRedirect(reverse("settings"))


@login_required
def export_download(request: HttpRequest, export_id: int) -> HttpResponse:
    export = DataExport.objects.filter(
        pk=export_id,
        user=_user(request),
        state=DataExport.State.READY,
        expires_at__gt=timezone.now(),
    ).first()
    if export is None:
        raise Http404("no such archive")
    response = HttpResponse(export.archive, content_type="application/json")
    stamp = export.created_at.strftime("%Y%m%d")
    response["Content-Disposition"] = f'attachment; filename="tokenhub-data-{stamp}.json"'
    return response


@login_required
@reauthentication_required(allow_get=True)
def account_delete_view(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return render(request, "accounts/settings_delete.html", {"section": "settings"})
    user = _user(request)
    try:
        account_delete(user=user)
    except AccountDeletionBlocked as exc:
        messages.error(
            request,
            _("You are the only owner of %(name)s: make someone else an owner first.")
            % {"name": exc.organization_name},
        )
        return HttpResponseRedirect(reverse("settings"))
    # account_delete ended every session already; a logout() here would record a sign-out
    # event with this request's address, which deletion has just erased.
    request.session.flush()
    request.user = AnonymousUser()
    messages.success(request, _("Your account has been deleted."))
    return HttpResponseRedirect(reverse("account_login"))


@require_POST
@capability_required(Capability.MANAGE_ORG)
def org_require_mfa(request: PortalRequest) -> HttpResponse:
    organization = request.organization
    required = request.POST.get("require_mfa") == "on"
    organization_set_require_mfa(organization=organization, required=required, request=request)
    messages.success(request, _("Two-factor policy saved."))
    return HttpResponseRedirect(reverse("settings"))


@require_POST
@capability_required(Capability.MANAGE_ORG)
def org_request_logs_delete(request: PortalRequest) -> HttpResponse:
    organization = request.organization
    if request.POST.get("confirm") != organization.name:
        messages.error(request, _("Type the organization's name to confirm."))
        return HttpResponseRedirect(reverse("settings"))
    deleted = request_logs_delete_for_organization(organization=organization, request=request)
    messages.success(request, _("Deleted %(count)d request logs.") % {"count": deleted})
    return HttpResponseRedirect(reverse("settings"))
