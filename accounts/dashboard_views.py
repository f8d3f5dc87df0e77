"""/dashboard/: the signed-in landing page (active organization, balance, next steps)."""

from __future__ import annotations

from typing import cast

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.access import Capability, capability_required
from accounts.models import Organization, User
from accounts.selectors import user_can_create_keys
from billing.models import Wallet
from billing.money import micros_to_usd


@capability_required(Capability.VIEW_ORG)
def overview(request: HttpRequest) -> HttpResponse:
    organization = cast(Organization, request.organization)  # type: ignore[attr-defined]
    wallet = Wallet.objects.filter(organization=organization).first()
    context = {
        "section": "overview",
        "balance": micros_to_usd(wallet.balance) if wallet else None,
        "can_create_keys": user_can_create_keys(user=cast(User, request.user)),
    }
    return render(request, "accounts/dashboard.html", context)
