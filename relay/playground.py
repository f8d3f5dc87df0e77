"""/playground/: chat with any allowed model through the relay, from the browser.

The page hands the browser a short-lived key of its own (accounts.services.
playground_key_issue: one per person and organization, reused until it expires) and the
browser talks to /v1/chat/completions directly, streaming.
The conversation lives only in the browser's local storage; the server keeps nothing but
the usual request metadata.
"""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache

from accounts.access import Capability, capability_required
from accounts.http import PortalRequest
from accounts.selectors import user_can_create_keys
from accounts.services import playground_key_issue

SESSION_KEY = "playground_secrets"  # {organization id: the secret last handed out}


@never_cache
@capability_required(Capability.USE_KEYS)
def playground(request: PortalRequest) -> HttpResponse:
    user = request.user
    organization = request.organization
    secret = ""
    if user_can_create_keys(user=user):
        # The secret is kept in the session so that the next visit (or a second tab) reuses
        # the key instead of cutting off this one. The session store is as sensitive as the
        # key: a session key there already signs this person in.
        kept: dict[str, str] = request.session.get(SESSION_KEY, {})
        key, secret = playground_key_issue(
            user=user, organization=organization, secret=kept.get(str(organization.pk), "")
        )
        if kept.get(str(organization.pk)) != secret:
            request.session[SESSION_KEY] = {**kept, str(organization.pk): secret}
    context = {
        "section": "playground",
        "secret": secret,
        "expires_at": key.expires_at if secret else None,
    }
    # never_cache: the page carries a live secret.
    return render(request, "relay/playground.html", context)
