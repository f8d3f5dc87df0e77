"""The owners' anomaly policy, a section of the organization page (its partial is
templates/accounts/partials/anomaly_policy.html)."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.access import Capability, capability_required
from accounts.http import PortalRequest
from logs.anomalies.services import anomaly_policy_set


# Owners and admins: the roles that manage every key, which the policy may disable.
@capability_required(Capability.MANAGE_KEYS)
@require_POST
def anomaly_policy_save(request: PortalRequest) -> HttpResponse:
    anomaly_policy_set(
        organization=request.organization,
        suspend_keys=request.POST.get("suspend_keys") == "on",
        alert_new_network=request.POST.get("alert_new_network") == "on",
        actor=request.user,
        request=request,
    )
    messages.success(request, _("Anomaly alert settings saved."))
    return redirect(reverse("portal-org") + "#anomaly-policy")
