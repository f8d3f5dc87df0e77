"""Every answer says what it cost: headers on whole answers, `usage.cost` in OpenAI-format
bodies, the last usage event of streams; the same number settlement charged, and nothing
at all for a key that hides costs. Read here on the wire (the SDKs: test_cost_sdks.py)."""

from __future__ import annotations

import datetime as dt
import http.server
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import orjson
import pytest
from django.utils import timezone

from accounts.models import ApiKey
from billing.models import Plan, Subscription
from billing.pricing import Usage as BillingUsage
from billing.services import price_set
from logs.models import RequestLog
from money import micros_to_usd
from relay import protocols
from relay.formats import anthropic, ir, openai_chat, responses
from relay.models import Channel
from relay.services import channel_create
from relay.stream_adapters import OpenAIPassThrough, Stamping, StreamAdapter
from tests.fakes.media import FakeMedia
from tests.fakes.upstream import Usage
from tests.relay.conftest import Customer, wait_for

MODEL = "cost-test"
USAGE = Usage(prompt_tokens=1_200, completion_tokens=345, cached_tokens=200)
COST_HEADERS = ("x-tokenhub-cost", "x-tokenhub-balance", "x-tokenhub-billed-to")
GEMINI_PATH = "/v1beta/models/" + MODEL


@pytest.fixture
def channel(fake) -> Callable[[str], Channel]:
    bases = {"anthropic": fake.url, "gemini": fake.url}

    def make(kind: str) -> Channel:
        return channel_create(
            name=kind,
            type=kind,
            base_url=bases.get(kind, fake.url + "/v1"),
            api_keys=[f"sk-{kind}"],
            models=[MODEL, "text-embedding-3-small", "gpt-3.5-turbo-instruct"],
        )

    return make


@pytest.fixture
def funded(customer: Customer, fake) -> Customer:
    # Prices with odd digits, so that every micro-USD of the cost shows.
    for model in (MODEL, "text-embedding-3-small", "gpt-3.5-turbo-instruct"):
        price_set(
            model=model, input_per_1m=1_234_567, output_per_1m=7_654_321, cache_read_per_1m=98_765
        )
    fake.configure(usage=USAGE)
    return customer


def _hide_costs(customer: Customer) -> None:
    # No key service sets the switch yet; the portal will (accounts owns it).
    ApiKey.objects.filter(pk=customer.key.pk).update(show_cost=False)


def _log() -> RequestLog:
    log: RequestLog = wait_for(lambda: RequestLog.objects.filter(status_code=200).first())
    return log


def _logs(n: int) -> list[RequestLog]:
    wait_for(lambda: RequestLog.objects.filter(status_code=200).count() >= n)
    return list(RequestLog.objects.order_by("id"))


def _post(customer: Customer, path: str, body: dict[str, Any]) -> httpx.Response:
    headers = {"authorization": f"Bearer {customer.secret}"}
    if path == "/v1/messages":
        headers = {"x-api-key": customer.secret, "anthropic-version": "2023-06-01"}
    elif path.startswith("/v1beta/"):
        headers = {"x-goog-api-key": customer.secret}
    response = httpx.post(customer.relay.url + path, json=body, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    return response


def _events(response: httpx.Response) -> list[dict[str, Any]]:
    """The JSON data of each SSE event, [DONE] as {"done": True}."""
    events = []
    for block in response.text.replace("\r\n", "\n").split("\n\n"):
        data = "\n".join(line[5:].strip() for line in block.split("\n") if line.startswith("data:"))
        if data:
            events.append({"done": True} if data == "[DONE]" else orjson.loads(data))
    return events


def _costs(events: list[dict[str, Any]]) -> list[tuple[int, float]]:
    """(index, cost) of every event with a usage cost, wherever its protocol keeps usage."""
    found = []
    for n, event in enumerate(events):
        response = event.get("response")
        for usage in (
            event.get("usage"),
            event.get("usageMetadata"),
            response.get("usage") if isinstance(response, dict) else None,
        ):
            if isinstance(usage, dict) and "cost" in usage:
                found.append((n, usage["cost"]))
    return found


CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
ANTHROPIC = {**CHAT, "max_tokens": 400}
RESPONSES = {"model": MODEL, "input": "hi"}
GEMINI = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
CHAT_STREAM = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}


def test_it_answers_with_the_cost_and_the_balance_left(
    funded: Customer, channel: Callable[[str], Channel]
) -> None:
    channel("openai")

    response = _post(funded, "/v1/chat/completions", CHAT)

    log = _log()
    assert log.cost > 0 and not log.usage_estimated
    assert response.headers["x-tokenhub-cost"] == micros_to_usd(log.cost)
    assert response.headers["x-tokenhub-billed-to"] == "balance"
    assert response.headers["x-tokenhub-balance"] == micros_to_usd(funded.balance())
    usage = response.json()["usage"]
    assert usage["cost"] == log.cost / 1_000_000
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (1_200, 345)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/completions", {"model": "gpt-3.5-turbo-instruct", "prompt": "hi"}),
        ("/v1/embeddings", {"model": "text-embedding-3-small", "input": "hi"}),
        ("/v1/responses", RESPONSES),
    ],
    ids=["completions", "embeddings", "responses"],
)
def test_every_openai_format_body_carries_usage_cost(
    funded: Customer, channel: Callable[[str], Channel], path: str, body: dict[str, Any]
) -> None:
    channel("openai-responses" if path == "/v1/responses" else "openai")

    response = _post(funded, path, body)

    log = _log()
    assert log.cost > 0
    assert response.json()["usage"]["cost"] == log.cost / 1_000_000
    assert response.headers["x-tokenhub-cost"] == micros_to_usd(log.cost)


@pytest.mark.parametrize(
    ("inbound", "kind"),
    [("/v1/chat/completions", "anthropic"), ("/v1/responses", "gemini")],
    ids=["chat-from-anthropic", "responses-from-gemini"],
)
def test_a_translated_body_carries_usage_cost(
    funded: Customer, channel: Callable[[str], Channel], inbound: str, kind: str
) -> None:
    channel(kind)

    response = _post(funded, inbound, CHAT if inbound.endswith("completions") else RESPONSES)

    log = _log()
    assert response.json()["usage"]["cost"] == log.cost / 1_000_000 > 0
    assert response.headers["x-tokenhub-cost"] == micros_to_usd(log.cost)


@pytest.mark.parametrize("kind", ["anthropic", "openai"], ids=["same", "translated"])
def test_anthropic_and_gemini_bodies_carry_the_cost_in_headers_only(
    funded: Customer, channel: Callable[[str], Channel], kind: str
) -> None:
    channel(kind)

    messages = _post(funded, "/v1/messages", ANTHROPIC)
    gemini = _post(funded, GEMINI_PATH + ":generateContent", GEMINI)

    first, second = _logs(2)
    assert messages.headers["x-tokenhub-cost"] == micros_to_usd(first.cost)
    assert gemini.headers["x-tokenhub-cost"] == micros_to_usd(second.cost)
    assert "cost" not in messages.json()["usage"]
    assert "cost" not in gemini.json()["usageMetadata"]


def test_the_fast_path_stream_carries_the_cost_in_its_usage_chunk(
    funded: Customer, channel: Callable[[str], Channel]
) -> None:
    channel("openai")

    response = _post(funded, "/v1/chat/completions", CHAT_STREAM)

    events = _events(response)
    log = _log()
    # Only the usage chunk, the last before [DONE], says what the call cost.
    assert _costs(events) == [(len(events) - 2, log.cost / 1_000_000)]
    assert events[-2]["choices"] == [] and events[-2]["usage"]["completion_tokens"] == 345
    assert events[-1] == {"done": True}
    assert response.headers["x-tokenhub-billed-to"] == "balance"
    assert "x-tokenhub-cost" not in response.headers  # unknown when the stream starts


def test_a_stream_that_did_not_ask_for_usage_gets_no_usage_chunk(
    funded: Customer, channel: Callable[[str], Channel]
) -> None:
    channel("openai")

    events = _events(_post(funded, "/v1/chat/completions", {**CHAT, "stream": True}))

    assert _log().cost > 0
    assert not any(e.get("usage") for e in events) and events[-1] == {"done": True}


STREAMS: dict[str, tuple[str, dict[str, Any], str | None, int]] = {
    # inbound path, body, the event carrying the cost, its position from the end
    "anthropic": ("/v1/messages", ANTHROPIC, "message_delta", 2),
    "responses": ("/v1/responses", RESPONSES, "response.completed", 1),
    "openai": (
        "/v1/chat/completions",
        {**CHAT, "stream_options": {"include_usage": True}},
        None,
        2,
    ),
}


@pytest.mark.parametrize(
    ("inbound", "kind"),
    [
        ("anthropic", "anthropic"),
        ("responses", "openai-responses"),
        ("anthropic", "openai"),
        ("anthropic", "gemini"),
        ("responses", "anthropic"),
        ("openai", "anthropic"),
        ("openai", "gemini"),
    ],
)
def test_a_stream_carries_the_cost_in_its_last_usage_event(
    funded: Customer, channel: Callable[[str], Channel], inbound: str, kind: str
) -> None:
    channel(kind)
    path, body, carrier, from_end = STREAMS[inbound]

    events = _events(_post(funded, path, {**body, "stream": True}))

    log = _log()
    assert log.cost > 0 and not log.usage_estimated
    assert _costs(events) == [(len(events) - from_end, log.cost / 1_000_000)]
    if carrier is not None:
        assert events[-from_end]["type"] == carrier


@pytest.mark.parametrize("kind", ["gemini", "openai"], ids=["same", "translated"])
def test_a_gemini_stream_carries_no_cost(
    funded: Customer, channel: Callable[[str], Channel], kind: str
) -> None:
    channel(kind)

    events = _events(_post(funded, GEMINI_PATH + ":streamGenerateContent?alt=sse", GEMINI))

    assert _log().cost > 0
    assert events[-1]["usageMetadata"]["candidatesTokenCount"] == 345
    assert _costs(events) == []


HIDDEN = [
    ("/v1/chat/completions", CHAT, "openai"),
    ("/v1/chat/completions", CHAT_STREAM, "openai"),
    ("/v1/chat/completions", CHAT_STREAM, "anthropic"),
    ("/v1/responses", RESPONSES, "openai-responses"),
    ("/v1/responses", {**RESPONSES, "stream": True}, "openai-responses"),
    ("/v1/messages", {**ANTHROPIC, "stream": True}, "anthropic"),
    ("/v1/messages", {**ANTHROPIC, "stream": True}, "openai"),
    (GEMINI_PATH + ":generateContent", GEMINI, "gemini"),
]  # fmt: skip


@pytest.mark.parametrize(("path", "body", "kind"), HIDDEN)
def test_a_key_that_hides_costs_gets_none(
    funded: Customer, channel: Callable[[str], Channel], path: str, body: dict[str, Any], kind: str
) -> None:
    channel(kind)
    _hide_costs(funded)

    response = _post(funded, path, body)

    assert _log().cost > 0
    assert not any(name in response.headers for name in COST_HEADERS)
    if body.get("stream"):
        assert _costs(_events(response)) == []
    else:
        assert _costs([response.json()]) == []


def test_the_cost_shown_is_the_charge_capped_by_the_hold(
    funded: Customer, channel: Callable[[str], Channel], fake
) -> None:
    channel("openai")
    # Worth about 3.8 USD, from a request that may cost at most a few hundred micro-USD.
    fake.configure(usage=Usage(prompt_tokens=10, completion_tokens=500_000))

    response = _post(funded, "/v1/chat/completions", {**CHAT, "max_tokens": 1})

    log = _log()
    assert 0 < log.cost < 1_000
    assert response.headers["x-tokenhub-cost"] == micros_to_usd(log.cost)
    assert response.json()["usage"]["cost"] == log.cost / 1_000_000
    assert response.headers["x-tokenhub-balance"] == micros_to_usd(funded.balance())


def test_a_call_the_plan_pays_shows_its_cost_and_leaves_the_balance(
    funded: Customer, channel: Callable[[str], Channel]
) -> None:
    channel("openai")
    plan = Plan.objects.create(name="Coding", slug="coding", price=2000, window_5h_limit=10**7)
    now = timezone.now()
    Subscription.objects.create(
        organization=funded.org, plan=plan, provider="admin",
        current_period_start=now - dt.timedelta(days=1),
        current_period_end=now + dt.timedelta(days=30),
    )  # fmt: skip
    before = funded.balance()

    response = _post(funded, "/v1/chat/completions", CHAT)

    log = _log()
    assert log.cost == 0 and log.plan_cost > 0
    assert response.headers["x-tokenhub-billed-to"] == "plan"
    assert response.headers["x-tokenhub-cost"] == micros_to_usd(log.plan_cost)
    assert response.json()["usage"]["cost"] == log.plan_cost / 1_000_000
    assert (
        response.headers["x-tokenhub-balance"]
        == micros_to_usd(before)
        == micros_to_usd(funded.balance())
    )


# --- an upstream that reports its own cost, as OpenRouter does ----------------------------


class _Costly(http.server.BaseHTTPRequestHandler):
    """OpenAI Chat Completions with `usage.cost` (the operator's price at OpenRouter)."""

    USAGE = {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17, "cost": 0.5}

    def do_POST(self) -> None:
        body = orjson.loads(self.rfile.read(int(self.headers["content-length"])))
        base = {"id": "gen-1", "created": 1, "model": body["model"]}
        if body.get("stream"):
            chunk = {**base, "object": "chat.completion.chunk"}
            delta = {"index": 0, "delta": {"content": "hello"}, "finish_reason": "stop"}
            events = [
                {**chunk, "choices": [delta]},
                {**chunk, "choices": [], "usage": self.USAGE},
            ]
            out = b"".join(b"data: " + orjson.dumps(e) + b"\n\n" for e in events)
            self._send(out + b"data: [DONE]\n\n", "text/event-stream")
            return
        message = {"role": "assistant", "content": "hello"}
        choice = {"index": 0, "message": message, "finish_reason": "stop"}
        answer = {**base, "object": "chat.completion", "choices": [choice], "usage": self.USAGE}
        self._send(orjson.dumps(answer), "application/json")

    def _send(self, body: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        pass


@pytest.fixture(scope="module")
def costly_upstream() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Costly)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


@pytest.mark.parametrize("shown", [True, False], ids=["shown", "hidden"])
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_an_upstreams_own_cost_never_reaches_the_caller(
    funded: Customer, costly_upstream: str, stream: bool, shown: bool
) -> None:
    channel_create(
        name="router", type="openai", base_url=costly_upstream, api_keys=["sk-r"], models=[MODEL]
    )
    if not shown:
        _hide_costs(funded)
    body = CHAT_STREAM if stream else CHAT

    response = _post(funded, "/v1/chat/completions", body)

    log = _log()
    answered = _events(response) if stream else [response.json()]
    usages = [e["usage"] for e in answered if e.get("usage")]
    assert [u["total_tokens"] for u in usages] == [17]
    assert usages[0].get("cost") == (log.cost / 1_000_000 if shown else None)
    assert log.cost != 500_000


# --- images -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def media_server() -> Iterator[FakeMedia]:
    with FakeMedia() as fake:
        yield fake


def test_an_image_answer_carries_the_cost_headers(
    customer: Customer, media_server: FakeMedia
) -> None:
    media_server.reset()
    channel_create(
        name="images", type="openai", base_url=media_server.url + "/v1", api_keys=["sk-i"],
        models=["dall-e-3"],
    )  # fmt: skip
    price_set(model="dall-e-3", per_image=40_321)

    response = _post(
        customer, "/v1/images/generations", {"model": "dall-e-3", "prompt": "a fox", "n": 2}
    )

    log = _log()
    assert log.cost == 2 * 40_321
    assert response.headers["x-tokenhub-cost"] == "0.080642"
    assert response.headers["x-tokenhub-billed-to"] == "balance"
    assert response.headers["x-tokenhub-balance"] == micros_to_usd(customer.balance())


# --- the adapters, fed the upstream's bytes split anywhere -------------------------------


def _upstream_stream(protocol: str) -> bytes:
    """A whole stream in PROTOCOL as its writer makes it; Anthropic's with a ping between
    its usage event and its end, as the API may send."""
    events: list[ir.StreamEvent] = [
        ir.StreamStart(id="x", model=MODEL, usage=BillingUsage(input_tokens=10)),
        ir.TextDelta("héllo wörld, "),
        ir.TextDelta("ünïcode ☃"),
        ir.StreamFinish("stop", BillingUsage(input_tokens=10, output_tokens=7)),
    ]
    writer: protocols.StreamWriter = openai_chat.StreamWriter(MODEL, include_usage=True)
    if protocol == "anthropic":
        writer = anthropic.StreamWriter(MODEL)
    elif protocol == "responses":
        writer = responses.StreamWriter(MODEL)
    raw = b"".join(writer.write(e) for e in events)
    if protocol == "anthropic":
        head, stop = raw.rsplit(b"event: message_stop", 1)
        raw = head + b'event: ping\ndata: {"type": "ping"}\n\nevent: message_stop' + stop
    return raw


def _adapter(protocol: str) -> StreamAdapter:
    def quote(usage: BillingUsage | None, output_bytes: int, complete: bool) -> int:
        assert usage is not None and usage.output_tokens == 7 and output_bytes > 0
        return 1_234 if complete else 1

    if protocol == "openai":
        return OpenAIPassThrough(False, quote)
    wire = {"anthropic": protocols.ANTHROPIC, "responses": protocols.RESPONSES}[protocol]
    carrier = {"anthropic": anthropic.COST_CARRIER, "responses": responses.COST_CARRIER}
    return Stamping(wire, carrier[protocol], quote)


@pytest.mark.parametrize("protocol", ["openai", "anthropic", "responses"])
def test_the_cost_goes_out_whole_however_the_upstream_splits_its_bytes(protocol: str) -> None:
    raw = _upstream_stream(protocol)
    whole = _adapter(protocol)
    expected = whole.feed(raw) + whole.finish()
    assert whole.complete

    for at in range(1, len(raw)):
        split = _adapter(protocol)
        out = split.feed(raw[:at]) + split.feed(raw[at:]) + split.finish()
        assert out == expected, at
    one_by_one = _adapter(protocol)
    out = b"".join(one_by_one.feed(raw[n : n + 1]) for n in range(len(raw)))
    assert out + one_by_one.finish() == expected
    events = [
        orjson.loads(line[5:]) for line in expected.split(b"\n") if line.startswith(b"data: {")
    ]
    # The last usage event: before Anthropic's ping and message_stop, before [DONE].
    assert _costs(events) == [(len(events) - (3 if protocol == "anthropic" else 1), 0.001234)]
    assert expected.replace(b',"cost":0.001234', b"") == raw.replace(b"\r\n", b"\n")
