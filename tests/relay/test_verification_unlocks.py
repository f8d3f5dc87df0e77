"""What verification unlocks in the relay (docs/enterprise.md): models only verified
organizations may call, the pricing group a verified organization gets, and the
requests-per-minute limit of unverified ones. Read with the key, so a verification
applies from the next key load."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest
from django.utils import timezone
from pytest_django.fixtures import Settings as SettingsWrapper

from accounts.models import Organization
from billing.models import PricingGroup
from billing.services import price_set
from logs.models import RequestLog
from relay.catalog import catalog
from tests.fakes.upstream import Usage
from tests.relay.conftest import Customer, wait_for

CHAT: dict[str, Any] = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def _post(customer: Customer, body: dict[str, Any] = CHAT) -> httpx.Response:
    return httpx.post(
        customer.base_url + "/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {customer.secret}"},
        timeout=30,
    )


def _verify(customer: Customer) -> None:
    Organization.objects.filter(pk=customer.org.pk).update(verified_at=timezone.now())
    catalog.clear()  # the next request loads the key afresh


def test_a_verified_only_model_is_refused_until_the_organization_is_verified(
    ready: Customer, settings: SettingsWrapper
) -> None:
    settings.VERIFIED_ONLY_MODELS = ["gpt-4o*"]

    refused = _post(ready)
    listed = [m.id for m in ready.openai().models.list()]

    assert refused.status_code == 403
    error = refused.json()["error"]
    assert error["code"] == "verification_required" and "gpt-4o-mini" in error["message"]
    assert "gpt-4o-mini" not in listed and "text-embedding-3-small" in listed

    _verify(ready)
    assert _post(ready).status_code == 200
    assert "gpt-4o-mini" in [m.id for m in ready.openai().models.list()]


def test_a_verified_organization_without_a_group_gets_the_verified_group(
    ready: Customer, fake, settings: SettingsWrapper
) -> None:
    PricingGroup.objects.create(name="verified", multiplier=Decimal("0.5"))
    settings.VERIFIED_PRICING_GROUP = "verified"
    price_set(model="gpt-4o-mini", input_per_1m=0, output_per_1m=1_000_000)
    fake.configure(usage=Usage(prompt_tokens=0, completion_tokens=1_000))

    _post(ready)
    _verify(ready)
    _post(ready)

    wait_for(lambda: RequestLog.objects.count() == 2)
    assert sorted(RequestLog.objects.values_list("cost", flat=True)) == [500, 1_000]


def test_unverified_organizations_get_the_default_rate_limit(
    ready: Customer, settings: SettingsWrapper
) -> None:
    settings.UNVERIFIED_RPM_LIMIT = 2

    statuses = [_post(ready).status_code for _ in range(3)]

    assert statuses == [200, 200, 429]
    _verify(ready)
    assert _post(ready).status_code == 200


def test_the_sdk_sees_a_permission_error_it_does_not_retry(
    ready: Customer, settings: SettingsWrapper
) -> None:
    settings.VERIFIED_ONLY_MODELS = ["gpt-4o-mini"]

    with pytest.raises(openai.PermissionDeniedError):
        ready.openai().chat.completions.create(**CHAT)
