"""/playground/: chat with any allowed model through the relay, from the browser.

The page hands the browser a short-lived key of its own (accounts.services.
playground_key_issue) and the browser talks to /v1/chat/completions directly, streaming.
The conversation lives only in the browser's local storage; the server keeps nothing but
the usual request metadata.
"""

from __future__ import annotations

from typing import cast

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache

from accounts.access import Capability, capability_required
from accounts.models import Organization, User
from accounts.selectors import user_can_create_keys
from accounts.services import PLAYGROUND_KEY_MINUTES, playground_key_issue


@never_cache
@capability_required(Capability.USE_KEYS)
def playground(request: HttpRequest) -> HttpResponse:
    user = cast(User, request.user)
    organization = cast(Organization, request.organization)  # type: ignore[attr-defined]
    secret = ""
    if user_can_create_keys(user=user):
        _, secret = playground_key_issue(user=user, organization=organization)
    context = {"section": "playground", "secret": secret, "minutes": PLAYGROUND_KEY_MINUTES}
    # never_cache: the page carries a live secret.
    return render(request, "relay/playground.html", context)
