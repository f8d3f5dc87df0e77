"""A finished video task records what its upstream charges the operator: the channel's
cost sheet per second for the upstream model, times the channel's cost multiplier."""

from __future__ import annotations

from decimal import Decimal

import pytest

from accounts.selectors import organization_personal
from accounts.services import user_create
from billing.models import Wallet
from billing.pricing import PriceSheet
from billing.services import wallet_credit
from logs.models import RequestLog
from relay.media import services
from relay.models import Channel, CostPrice
from relay.services import channel_create

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]


def _finish(channel: Channel, seconds: int) -> RequestLog:
    org = organization_personal(user=user_create(email="video@example.com"))
    wallet_credit(organization=org, amount=100_000, kind="adjust", source_type="t", source_id="v")
    task = services.media_task_open(
        public_id="video_cost", organization_id=org.pk,
        wallet_id=Wallet.objects.get(organization=org).pk, api_key_id=None, model="sora-2",
        seconds=8, size="1280x720", resolution="720p", amount=800,
        price=PriceSheet(per_second=100), multiplier=Decimal(1), client_ip=None,
    )  # fmt: skip
    services.media_task_accept(
        task_id=task.pk, channel_id=channel.pk,
        channel_type="openai", key_fingerprint="", upstream_model="sora-2-2025",
        upstream_id="up1", state="queued", progress=0,
    )  # fmt: skip
    assert services.media_task_complete(
        task_id=task.pk, seconds=seconds, output_tokens=None, result_url="", expires_at=None
    )
    return RequestLog.objects.get(request_id="video_cost")


def _channel() -> Channel:
    return channel_create(
        name="sora", type="openai", base_url="https://upstream.test/v1", api_keys=["sk-x"],
        models=["sora-2"],
    )  # fmt: skip


def test_the_channels_cost_per_second_times_its_multiplier() -> None:
    channel = _channel()
    Channel.objects.filter(pk=channel.pk).update(cost_multiplier=Decimal("0.75"))
    CostPrice.objects.create(channel_type="openai", model="sora-2-2025", per_second=60)

    log = _finish(channel, seconds=6)

    assert (log.cost, log.hold, log.upstream_cost) == (600, 800, 6 * 60 * 3 // 4)


def test_without_a_cost_sheet_the_sale_price_at_list_is_the_cost() -> None:
    assert _finish(_channel(), seconds=4).upstream_cost == 400
