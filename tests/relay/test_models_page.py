"""/models/: public prices of every model an enabled channel serves, per pricing group."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.test import Client

from accounts.models import Organization, User
from billing.models import PricingGroup
from billing.services import price_set
from relay.models import Channel
from relay.services import channel_create

pytestmark = pytest.mark.django_db


def _row(text: str, model: str) -> list[str]:
    row = text.split(f'data-model="{model}"', 1)[1].split("</tr>", 1)[0]
    return [re.sub(r"<[^>]+>", "", "<td" + cell).strip() for cell in row.split("<td")[2:]]


@pytest.fixture
def catalog() -> None:
    channel_create(name="a", type="openai", base_url="https://a.example/v1", api_keys=["k"],
                   models=["gpt-4o-mini", "unpriced"])  # fmt: skip
    channel_create(name="vip", type="openai", base_url="https://b.example/v1", api_keys=["k"],
                   models=["o3"], groups=["vip"])  # fmt: skip
    off = channel_create(name="off", type="openai", base_url="https://c.example/v1",
                         api_keys=["k"], models=["retired"])  # fmt: skip
    Channel.objects.filter(pk=off.pk).update(status=Channel.Status.DISABLED)
    price_set(model="gpt-4o-mini", input_per_1m=150_000, output_per_1m=600_000,
              cache_read_per_1m=75_000)  # fmt: skip
    price_set(model="o3", input_per_1m=20_000_000, output_per_1m=80_000_000)
    price_set(model="retired", input_per_1m=1)


def test_it_lists_served_priced_models_to_anyone(client: Client, catalog: None) -> None:
    text = client.get("/models/").content.decode()

    assert _row(text, "gpt-4o-mini")[:4] == ["$0.15", "$0.60", "$0.075", "$0.15"]
    for hidden in ("o3", "retired", "unpriced"):  # other group, disabled, no price
        assert f'data-model="{hidden}"' not in text


def test_it_applies_the_signed_in_organizations_group(
    client: Client, catalog: None, owner: User, org: Organization
) -> None:
    org.pricing_group = PricingGroup.objects.create(name="vip", multiplier=Decimal("0.5"))
    org.save()
    client.force_login(owner)

    text = client.get("/models/").content.decode()

    assert _row(text, "o3")[:2] == ["$10.00", "$40.00"]  # not "$1E+1"
    assert _row(text, "gpt-4o-mini")[:2] == ["$0.075", "$0.30"]
    assert "vip" in text
