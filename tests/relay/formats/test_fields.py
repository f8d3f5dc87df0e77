"""The field policy: advisory fields dropped and named, semantic ones refused, strict channels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from relay.formats import fields, ir
from relay.protocols import ANTHROPIC, GEMINI, OPENAI, RESPONSES, WireProtocol

USER = [{"role": "user", "content": "hi"}]


def translate(
    protocol: WireProtocol, body: dict[str, Any], target: str, *, strict: bool = False
) -> tuple[ir.ChatRequest, tuple[str, ...]]:
    return protocol.request_ir(body, "m", False, target=target, strict=strict)


def test_it_drops_claude_codes_context_management_for_other_providers() -> None:
    body = {
        "model": "m",
        "max_tokens": 100,
        "messages": USER,
        "context_management": {"edits": [{"type": "clear_thinking_20251015"}]},
        "top_k": 5,
    }

    req, dropped = translate(ANTHROPIC, body, "openai")

    assert dropped == ("context_management", "top_k")
    assert req.top_k is None


def test_it_translates_top_k_where_the_target_has_it() -> None:
    body = {"model": "m", "max_tokens": 100, "messages": USER, "top_k": 5}

    req, dropped = translate(ANTHROPIC, body, "gemini")

    assert (req.top_k, dropped) == (5, ())


def test_it_drops_gemini_top_k_for_openai_naming_the_nested_field() -> None:
    body = {
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        "generationConfig": {"topK": 40, "temperature": 0.2, "seed": 3},
        "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "OFF"}],
    }

    req, dropped = translate(GEMINI, body, "responses")

    assert dropped == ("generationConfig.topK", "generationConfig.seed", "safetySettings")
    assert (req.top_k, req.temperature) == (None, 0.2)


def test_it_keeps_gemini_top_k_for_anthropic() -> None:
    body = {
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        "generationConfig": {"topK": 40},
    }

    req, dropped = translate(GEMINI, body, "anthropic")

    assert (req.top_k, dropped) == (40, ())


def test_it_names_unknown_fields_as_dropped() -> None:
    body = {"model": "m", "input": "hi", "client_metadata": {"x": 1}, "prompt_cache_key": "k"}

    _, dropped = translate(RESPONSES, body, "anthropic")

    assert dropped == ("client_metadata", "prompt_cache_key")


@pytest.mark.parametrize(
    ("protocol", "body", "field"),
    [
        (OPENAI, {"model": "m", "messages": USER, "n": 3}, "n"),
        (OPENAI, {"model": "m", "messages": USER, "logprobs": True}, "logprobs"),
        (ANTHROPIC, {"model": "m", "messages": USER, "mcp_servers": [{}]}, "mcp_servers"),
        (RESPONSES, {"model": "m", "input": "hi", "background": True}, "background"),
        (
            GEMINI,
            {"contents": [], "generationConfig": {"candidateCount": 2}},
            "generationConfig.candidateCount",
        ),
    ],
)
def test_it_refuses_semantic_fields_naming_them(
    protocol: WireProtocol, body: dict[str, Any], field: str
) -> None:
    with pytest.raises(ir.TranslationError, match=f"'{field}' cannot be sent"):
        translate(protocol, body, "anthropic" if protocol is not ANTHROPIC else "openai")


@pytest.mark.parametrize(
    ("protocol", "body"),
    [
        (OPENAI, {"model": "m", "messages": USER, "n": 1, "logprobs": False, "seed": None}),
        (OPENAI, {"model": "m", "messages": USER, "modalities": ["text"], "logit_bias": {}}),
        (RESPONSES, {"model": "m", "input": "hi", "store": False, "background": False}),
        (GEMINI, {"contents": [], "generationConfig": {"candidateCount": 1}}),
    ],
)
def test_values_that_ask_for_nothing_are_neither_dropped_nor_refused(
    protocol: WireProtocol, body: dict[str, Any]
) -> None:
    _, dropped = translate(protocol, body, "anthropic")

    assert dropped == ()


def test_a_strict_channel_refuses_advisory_fields() -> None:
    body = {"model": "m", "messages": USER, "seed": 7}

    with pytest.raises(ir.TranslationError, match=r"'seed'.*refuses the fields it would drop"):
        translate(OPENAI, body, "anthropic", strict=True)
    assert translate(OPENAI, {"model": "m", "messages": USER}, "anthropic", strict=True)[1] == ()


def test_a_refusal_never_quotes_an_unsafe_field_name() -> None:
    body = {"model": "m", "messages": USER, "bad\nname: x": 1}

    with pytest.raises(ir.TranslationError) as caught:
        translate(OPENAI, body, "anthropic", strict=True)

    assert "bad" not in str(caught.value)


def test_the_header_value_lists_safe_names_only_and_caps_their_number() -> None:
    many = tuple(f"f{i}" for i in range(30))

    assert fields.header_value(("top_k", "x\r\ny", "é")) == "top_k,(2 unnamed)"
    value = fields.header_value(many)
    assert value.split(",")[-1] == "(+6 more)"
    assert len(value.split(",")) == fields.MAX_REPORTED + 1


def test_every_table_names_only_known_targets() -> None:
    for protocol in (OPENAI, ANTHROPIC, GEMINI, RESPONSES):
        for name, rule in protocol.field_table.rules.items():
            assert set(rule.targets) <= set(fields.TARGETS), (protocol.name, name)


def test_docs_protocols_md_shows_the_tables_the_code_applies() -> None:
    doc = (Path(settings.BASE_DIR) / "docs" / "protocols.md").read_text()
    shown = doc.split("<!-- field-tables:start -->\n")[1].split("<!-- field-tables:end -->")[0]

    tables = {p.name: p.field_table for p in (OPENAI, RESPONSES, ANTHROPIC, GEMINI)}
    assert shown == fields.markdown(tables)
