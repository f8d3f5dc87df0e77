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
from django.utils.translation import gettext_lazy as _lazy

from accounts.legal import legal_documents_to_accept
from accounts.models import User
from accounts.selectors import user_mfa_required_but_missing

# Only the portal is gated: sign-in, MFA set-up, legal pages, static files, the admin and
# the APIs (which answer in their own formats) stay reachable.
# The settings page stays open so that anyone can still export their data or delete
# their account without first accepting new terms.
GATED_PREFIXES = ("/dashboard/",)
UNGATED_PREFIXES = ("/dashboard/settings/",)


MFA_REQUIRED = _lazy("An organization you belong to requires two-factor authentication.")


class PolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if isinstance(user, User) and user.is_authenticated:
            path = request.path
            if path.startswith("/admin/"):
                response = self._admin(request, user)
            elif path.startswith(GATED_PREFIXES) and not path.startswith(UNGATED_PREFIXES):
                response = self._portal(request, user)
            elif path.startswith("/api/"):
                # A browser session; API keys authenticate later, in DRF, and are unaffected.
                response = self._api(user)
            else:
                response = None
            if response is not None:
                return response
        return self.get_response(request)

    def _admin(self, request: HttpRequest, user: User) -> HttpResponse | None:
        """Signed in by Django's admin form (password only) although the person has a second
        factor: end that session and start again through allauth, which asks for it."""
        records = get_authentication_records(request, user)
        if is_mfa_enabled(user) and not any(r.get("method") == "mfa" for r in records):
            logout(request)
            return HttpResponseRedirect(f"/accounts/login/?{urlencode({'next': request.path})}")
        return None

    def _portal(self, request: HttpRequest, user: User) -> HttpResponse | None:
        if legal_documents_to_accept(user=user):
            query = urlencode({"next": request.get_full_path()})
            return HttpResponseRedirect(f"/legal/accept/?{query}")
        if user_mfa_required_but_missing(user=user):
            messages.warning(request, MFA_REQUIRED)
            return HttpResponseRedirect("/accounts/2fa/")
        return None

    def _api(self, user: User) -> HttpResponse | None:
        if user_mfa_required_but_missing(user=user):
            return JsonResponse({"detail": str(MFA_REQUIRED)}, status=403)
        return None
