"""Public pages about what the relay serves: `/models/`, every callable model and its price."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.access import organization_for_request
from billing.models import Price, PricingGroup
from billing.services import DEFAULT_GROUP
from relay.models import Channel


@dataclass(frozen=True)
class ModelPrice:
    """A model's prices in micro-USD (per 1M tokens, per request, image or video second),
    after the group multiplier; None where the model has no such price."""

    model: str
    input: int | None
    output: int | None
    cache_read: int | None
    cache_write: int | None
    per_request: int | None
    per_image: int | None
    per_second: int | None


def _scaled(micros: int | None, multiplier: Decimal) -> int | None:
    if not micros:
        return None
    return int((Decimal(micros) * multiplier).to_integral_value(ROUND_HALF_UP))


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
                input=_scaled(p.input_per_1m, multiplier),
                output=_scaled(p.output_per_1m, multiplier),
                # No own cache price means the input price (billing/pricing.py).
                cache_read=_scaled(p.cache_read_per_1m, multiplier),
                cache_write=_scaled(p.cache_write_per_1m, multiplier),
                per_request=_scaled(p.per_request, multiplier),
                per_image=_scaled(p.per_image, multiplier),
                per_second=_scaled(p.per_second, multiplier),
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
