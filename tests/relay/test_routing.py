"""Failover, cooldown and auto-disable across channels."""

from __future__ import annotations

import openai
import pytest

from logs.models import RequestLog
from relay.models import Channel
from tests.relay.conftest import Customer, wait_for


def _ask(customer: Customer, text: str = "route me", **extra: object) -> object:
    return customer.openai().chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": text}], **extra
    )


def _keys_called(fake) -> list[str]:
    return [r.key for r in fake.requests]


def test_it_fails_over_to_the_next_channel_and_never_retries_a_failed_one(
    customer: Customer, openai_channel, priced, fake
) -> None:
    fake.fail(500, key="sk-bad")
    openai_channel(name="bad", api_keys=["sk-bad"], priority=10)
    openai_channel(name="good", api_keys=["sk-good"], priority=0)
    _ask(customer)
    assert _keys_called(fake) == ["sk-bad", "sk-good"]
    log = wait_for(lambda: RequestLog.objects.first())
    assert log.attempts == 2 and log.status_code == 200
    assert log.channel_id == Channel.objects.get(name="good").pk


def test_it_passes_the_last_upstream_error_through_once_every_channel_failed(
    customer: Customer, openai_channel, priced, fake, settings
) -> None:
    settings.RELAY_MAX_ATTEMPTS = 5
    fake.fail(503, key="sk-a", message="upstream overloaded")
    fake.fail(503, key="sk-b", message="upstream overloaded")
    openai_channel(name="a", api_keys=["sk-a"])
    openai_channel(name="b", api_keys=["sk-b"])
    with pytest.raises(openai.InternalServerError) as exc:
        _ask(customer)
    assert exc.value.status_code == 503
    assert sorted(_keys_called(fake)) == ["sk-a", "sk-b"]  # each once, though 5 were allowed
    log = wait_for(lambda: RequestLog.objects.first())
    assert log.status_code == 503 and log.cost == 0 and log.attempts == 2


def test_it_stops_after_relay_max_attempts(
    customer: Customer, openai_channel, priced, fake, settings
) -> None:
    settings.RELAY_MAX_ATTEMPTS = 2
    for name in ("a", "b", "c"):
        fake.fail(500, key=f"sk-{name}")
        openai_channel(name=name, api_keys=[f"sk-{name}"])
    with pytest.raises(openai.InternalServerError):
        _ask(customer)
    assert len(fake.requests) == 2


def test_it_does_not_retry_a_bad_request(customer: Customer, openai_channel, priced, fake) -> None:
    fake.fail(400, key="sk-a", message="bad parameter")
    openai_channel(name="a", api_keys=["sk-a"], priority=1)
    openai_channel(name="b", api_keys=["sk-b"])
    with pytest.raises(openai.BadRequestError) as exc:
        _ask(customer)
    assert "bad parameter" in str(exc.value)
    assert _keys_called(fake) == ["sk-a"]


def test_it_retries_a_connection_failure_and_a_429(
    customer: Customer, openai_channel, priced, fake
) -> None:
    fake.fail(key="sk-a", mode="disconnect")
    fake.fail(429, key="sk-b")
    openai_channel(name="a", api_keys=["sk-a"], priority=2)
    openai_channel(name="b", api_keys=["sk-b"], priority=1)
    openai_channel(name="c", api_keys=["sk-c"], priority=0)
    _ask(customer)
    assert _keys_called(fake) == ["sk-a", "sk-b", "sk-c"]


def test_it_cools_down_a_channel_that_keeps_failing(
    customer: Customer, openai_channel, priced, fake, settings
) -> None:
    settings.RELAY_COOLDOWN_FAILURES = 2
    fake.fail(500, key="sk-flaky")
    openai_channel(name="flaky", api_keys=["sk-flaky"], priority=10)
    openai_channel(name="steady", api_keys=["sk-steady"])
    _ask(customer)
    _ask(customer)
    assert _keys_called(fake) == ["sk-flaky", "sk-steady"] * 2
    _ask(customer)  # the flaky channel is cooling down: not even tried
    assert _keys_called(fake)[-1:] == ["sk-steady"] and len(fake.requests) == 5


def test_it_disables_a_channel_whose_credentials_upstream_rejects(
    customer: Customer, openai_channel, priced, fake
) -> None:
    fake.reject_key("sk-revoked")
    openai_channel(name="revoked", api_keys=["sk-revoked"], priority=10)
    openai_channel(name="fine", api_keys=["sk-fine"])
    _ask(customer)
    channel = Channel.objects.get(name="revoked")
    assert channel.status == Channel.Status.AUTO_DISABLED
    assert "401" in channel.disabled_reason
    _ask(customer)
    assert _keys_called(fake) == ["sk-revoked", "sk-fine", "sk-fine"]


def test_it_answers_503_when_every_channel_of_a_priced_model_is_disabled(
    customer: Customer, openai_channel, priced, fake
) -> None:
    fake.reject_key("sk-revoked")
    openai_channel(name="only", api_keys=["sk-revoked"])
    with pytest.raises(openai.APIStatusError) as exc:
        _ask(customer)
    assert exc.value.status_code == 503
    with pytest.raises(openai.APIStatusError) as again:
        _ask(customer)
    assert again.value.status_code == 503
    body = again.value.body
    assert isinstance(body, dict) and body["code"] == "no_available_channel"


def test_it_maps_model_names_to_the_upstream_name(
    customer: Customer, openai_channel, priced, fake
) -> None:
    openai_channel(models=("gpt-4o-mini",), model_map={"gpt-4o-mini": "gpt-4o-mini-2024-07-18"})
    _ask(customer)
    assert fake.requests[-1].json["model"] == "gpt-4o-mini-2024-07-18"
    log = wait_for(lambda: RequestLog.objects.first())
    assert (log.model, log.upstream_model) == ("gpt-4o-mini", "gpt-4o-mini-2024-07-18")


def test_it_only_routes_to_channels_of_the_key_group(
    customer: Customer, openai_channel, priced, fake
) -> None:
    openai_channel(name="vip-only", api_keys=["sk-vip"], groups=["vip"], priority=10)
    openai_channel(name="everyone", api_keys=["sk-all"])
    _ask(customer)
    assert _keys_called(fake) == ["sk-all"]


def test_it_spreads_load_by_weight_inside_a_priority(
    customer: Customer, openai_channel, priced, fake
) -> None:
    openai_channel(name="heavy", api_keys=["sk-heavy"], weight=9)
    openai_channel(name="light", api_keys=["sk-light"], weight=1)
    for i in range(100):
        _ask(customer, f"conversation {i}")  # 100 conversations, each its own affinity
    heavy = _keys_called(fake).count("sk-heavy")
    # Expected 90 of 100 (sd 3); both bounds fail by chance less than once in 10^4 runs.
    assert 75 <= heavy <= 99


def test_one_conversation_stays_on_one_channel_and_upstream_key(
    customer: Customer, openai_channel, priced, fake
) -> None:
    """Prompt caches are per channel and account: the turns of a conversation stay."""
    openai_channel(name="a", api_keys=["sk-a1", "sk-a2", "sk-a3"])
    openai_channel(name="b", api_keys=["sk-b1", "sk-b2", "sk-b3"])
    for _ in range(12):
        _ask(customer, "the same long prefix")
    for i in range(12):
        _ask(customer, "another prompt", prompt_cache_key="session-7", seed=i)
    first, second = _keys_called(fake)[:12], _keys_called(fake)[12:]
    assert len(set(first)) == 1 and len(set(second)) == 1
    # Many conversations still use every channel and key.
    for i in range(60):
        _ask(customer, f"conversation {i}")
    assert len(set(_keys_called(fake)[24:])) == 6


def test_a_conversation_fails_over_when_its_channel_fails(
    customer: Customer, openai_channel, priced, fake
) -> None:
    openai_channel(name="a", api_keys=["sk-a"])
    openai_channel(name="b", api_keys=["sk-b"])
    _ask(customer, "stay here")
    home = _keys_called(fake)[0]
    other = "sk-b" if home == "sk-a" else "sk-a"
    fake.fail(500, key=home, times=1)
    _ask(customer, "stay here")
    assert _keys_called(fake)[1:] == [home, other]


@pytest.mark.parametrize(
    ("status", "error_type", "message", "marker"),
    [
        (429, "insufficient_quota", None, "insufficient_quota"),
        (402, None, None, "402"),
    ],
)
def test_it_disables_a_channel_whose_upstream_account_is_out_of_credit(
    customer: Customer, openai_channel, priced, fake, status, error_type, message, marker
) -> None:
    fake.fail(status, key="sk-broke", error_type=error_type, message=message)
    openai_channel(name="broke", api_keys=["sk-broke"], priority=10)
    openai_channel(name="fine", api_keys=["sk-fine"])
    _ask(customer)
    channel = Channel.objects.get(name="broke")
    assert channel.status == Channel.Status.AUTO_DISABLED
    assert channel.disabled_reason == f"upstream quota exhausted ({marker})"
    _ask(customer)
    assert _keys_called(fake) == ["sk-broke", "sk-fine", "sk-fine"]


def test_a_plain_rate_limit_only_cools_the_channel_down(
    customer: Customer, openai_channel, priced, fake
) -> None:
    fake.fail(429, key="sk-busy")
    openai_channel(name="busy", api_keys=["sk-busy"], priority=10)
    openai_channel(name="fine", api_keys=["sk-fine"])
    _ask(customer)
    assert Channel.objects.get(name="busy").status == Channel.Status.ENABLED


@pytest.mark.parametrize(
    ("status", "body", "marker"),
    [
        (400, b'{"type":"error","error":{"type":"invalid_request_error","message":'
              b'"Your credit balance is too low to access the Anthropic API."}}',
         "credit balance too low"),
        (429, b'{"error":{"code":429,"message":"Quota exceeded","status":"RESOURCE_EXHAUSTED"}}',
         ""),
        (429, b'{"error":{"type":"requests","code":"rate_limit_exceeded"}}', ""),
        (400, b"not json", ""),
        (429, b'{"error":"insufficient_quota"}', ""),
    ],
)  # fmt: skip
def test_it_tells_an_empty_account_from_a_rate_limit(status: int, body: bytes, marker: str) -> None:
    from relay.pipeline.forward import _quota_exhausted

    assert _quota_exhausted(status, body) == marker
