"""Sign-in policies applied to the signed-in portal: legal re-acceptance and required MFA."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
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
        return self.get_response(request)
