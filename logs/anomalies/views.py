"""The owners' anomaly policy, a section of the organization page (its partial is
templates/accounts/partials/anomaly_policy.html)."""

from __future__ import annotations

from typing import cast

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.access import Capability, capability_required
from accounts.models import Organization, User
from logs.anomalies.services import anomaly_policy_set


# Owners and admins: the roles that manage every key, which the policy may disable.
@capability_required(Capability.MANAGE_KEYS)
@require_POST
def anomaly_policy_save(request: HttpRequest) -> HttpResponse:
    anomaly_policy_set(
        organization=cast(Organization, request.organization),  # type: ignore[attr-defined]
        suspend_keys=request.POST.get("suspend_keys") == "on",
        alert_new_network=request.POST.get("alert_new_network") == "on",
        actor=cast(User, request.user),
        request=request,
    )
    messages.success(request, _("Anomaly alert settings saved."))
    return redirect(reverse("portal-org") + "#anomaly-policy")
