"""Sign-in policies: legal re-acceptance and required MFA before the portal, and no way
around a person's second factor through the admin's own login form."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode

from allauth.account.internal.flows.login import get_authentication_records
from allauth.mfa.utils import is_mfa_enabled
from django.contrib import messages
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.utils.translation import gettext as _

from accounts.legal import legal_documents_to_accept
from accounts.models import User
from accounts.selectors import user_mfa_required_but_missing

# Only the portal is gated: sign-in, MFA set-up, legal pages, static files, the admin and
# the APIs (which answer in their own formats) stay reachable.
# The settings page stays open so that anyone can still export their data or delete
# their account without first accepting new terms.
GATED_PREFIXES = ("/dashboard/",)
UNGATED_PREFIXES = ("/dashboard/settings/",)


class PolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if (
            isinstance(user, User)
            and user.is_authenticated
            and request.path.startswith("/admin/")
            and is_mfa_enabled(user)
            and not any(r.get("method") == "mfa" for r in get_authentication_records(request, user))
        ):
            # Signed in by Django's admin form (password only) although the person has a
            # second factor: start again through allauth, which asks for it.
            logout(request)
            return HttpResponseRedirect(f"/accounts/login/?{urlencode({'next': request.path})}")
        if (
            isinstance(user, User)
            and user.is_authenticated
            and request.path.startswith(GATED_PREFIXES)
            and not request.path.startswith(UNGATED_PREFIXES)
        ):
            if legal_documents_to_accept(user=user):
                query = urlencode({"next": request.get_full_path()})
                return HttpResponseRedirect(f"/legal/accept/?{query}")
            if user_mfa_required_but_missing(user=user):
                messages.warning(
                    request,
                    _("An organization you belong to requires two-factor authentication."),
                )
                return HttpResponseRedirect("/accounts/2fa/")
        if (
            isinstance(user, User)
            and user.is_authenticated  # a browser session; API keys authenticate later, in DRF
            and request.path.startswith("/api/")
            and user_mfa_required_but_missing(user=user)
        ):
            detail = _("An organization you belong to requires two-factor authentication.")
            return JsonResponse({"detail": detail}, status=403)
        return self.get_response(request)
