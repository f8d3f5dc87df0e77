"""Public pages about what the relay serves: `/models/`, every callable model and its price."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.access import organization_for_request
from billing.models import Price, PricingGroup
from billing.services import DEFAULT_GROUP
from relay.models import Channel


@dataclass(frozen=True)
class ModelPrice:
    model: str
    input: str | None  # USD per 1M tokens, after the group multiplier
    output: str | None
    cache_read: str | None
    cache_write: str | None
    per_request: str | None
    per_image: str | None
    per_second: str | None


def _usd(micros: int | None, multiplier: Decimal) -> str | None:
    """ "10", "0.075": no trailing zeros and never exponent notation."""
    if not micros:
        return None
    return format((Decimal(micros) * multiplier / 1_000_000).normalize(), "f")


def models_priced(*, group: str, multiplier: Decimal) -> list[ModelPrice]:
    """Models an enabled channel of GROUP serves and that have a price, A to Z."""
    served: set[str] = set()
    for names, groups in Channel.objects.filter(status=Channel.Status.ENABLED).values_list(
        "model_names", "groups"
    ):
        if not groups or group in groups:
            served.update(names)
    rows = []
    for p in Price.objects.filter(model__in=served).order_by("model"):
        rows.append(
            ModelPrice(
                model=p.model,
                input=_usd(p.input_per_1m, multiplier),
                output=_usd(p.output_per_1m, multiplier),
                # No own cache price means the input price (billing/pricing.py).
                cache_read=_usd(p.cache_read_per_1m, multiplier),
                cache_write=_usd(p.cache_write_per_1m, multiplier),
                per_request=_usd(p.per_request, multiplier),
                per_image=_usd(p.per_image, multiplier),
                per_second=_usd(p.per_second, multiplier),
            )
        )
    return rows


def models_page(request: HttpRequest) -> HttpResponse:
    group_name, multiplier = DEFAULT_GROUP, Decimal(1)
    if request.user.is_authenticated:
        organization, _ = organization_for_request(request)
        group: PricingGroup | None = organization.pricing_group
        if group is not None:
            group_name, multiplier = group.name, group.multiplier
    context = {
        "models": models_priced(group=group_name, multiplier=multiplier),
        "group": group_name,
        "multiplier": multiplier,
    }
    return render(request, "relay/models.html", context)
