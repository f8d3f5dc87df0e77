"""OpenAI wire format (Chat Completions, Completions, Embeddings): requests, usage, errors.

Same-protocol relaying passes the client's body through untouched except the model name
and, for streams, `stream_options.include_usage`, which the meter needs.
"""

from __future__ import annotations

from typing import Any

import orjson

from billing.pricing import Usage
from relay.errors import RelayError, bad_request
from relay.formats import cost, limits

_SEP = b"\n\n"


def parse_body(raw: bytes) -> dict[str, Any]:
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise bad_request(
            "We could not parse the JSON body of your request. Send valid JSON."
        ) from None
    if not isinstance(payload, dict):
        raise bad_request("The request body must be a JSON object.")
    # orjson reads 1024 levels but writes 254: a body nested past that would be read, then
    # fail on its way upstream (relay/formats/limits.py).
    if limits.nested_deeper_than(payload):
        raise bad_request(
            f"The request body nests lists and objects more than {limits.MAX_NESTING} levels deep."
        )
    return payload


def requested_model(payload: dict[str, Any]) -> str:
    model = payload.get("model")
    if not isinstance(model, str) or not model.strip():
        raise bad_request("You must provide a model parameter.", param="model")
    return model


# Beyond any model's output, and small enough that a hold's arithmetic stays in a bigint.
MAX_OUTPUT_TOKENS = 2**31 - 1


def positive_int(value: Any, name: str, *, most: int = MAX_OUTPUT_TOKENS) -> int:
    """VALUE as an integer in 1..MOST, else a 400 naming the field NAME."""
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= most:
        raise bad_request(f"'{name}' must be an integer from 1 to {most}.", param=name)
    return value


def requested_max_output(payload: dict[str, Any]) -> int | None:
    for field in ("max_completion_tokens", "max_tokens", "max_output_tokens"):
        value = payload.get(field)
        if value is not None:
            return positive_int(value, field)
    return None


def upstream_body(
    raw: bytes, payload: dict[str, Any], upstream_model: str, stream: bool
) -> tuple[bytes, bool]:
    """(body to send, whether we added include_usage and must strip its chunk)."""
    changed = False
    added_usage = False
    if payload.get("model") != upstream_model:
        payload = {**payload, "model": upstream_model}
        changed = True
    if stream:
        options = payload.get("stream_options")
        if not (isinstance(options, dict) and options.get("include_usage")):
            merged = {**options} if isinstance(options, dict) else {}
            merged["include_usage"] = True
            payload = {**payload, "stream_options": merged}
            changed = added_usage = True
    return (orjson.dumps(payload) if changed else raw), added_usage


def _int(value: Any) -> int:
    return limits.token_count(value)


def usage_from(obj: Any) -> Usage | None:
    """Usage from an OpenAI `usage` object (and the common OpenAI-compatible variants)."""
    if not isinstance(obj, dict):
        return None
    prompt_details = obj.get("prompt_tokens_details") or {}
    completion_details = obj.get("completion_tokens_details") or {}
    if not isinstance(prompt_details, dict):
        prompt_details = {}
    if not isinstance(completion_details, dict):
        completion_details = {}
    cache_read = _int(prompt_details.get("cached_tokens")) or _int(
        obj.get("prompt_cache_hit_tokens")  # DeepSeek
    )
    cache_write = _int(prompt_details.get("cache_write_tokens")) or _int(
        obj.get("cache_creation_input_tokens")
    )
    prompt = _int(obj.get("prompt_tokens")) or _int(obj.get("input_tokens"))
    completion = _int(obj.get("completion_tokens")) or _int(obj.get("output_tokens"))
    return Usage(
        input_tokens=prompt,
        output_tokens=completion,
        cache_read_tokens=min(cache_read, prompt),
        cache_write_tokens=min(cache_write, max(0, prompt - cache_read)),
        reasoning_tokens=_int(completion_details.get("reasoning_tokens")),
    )


def meter_body(raw: bytes) -> tuple[Usage | None, int]:
    """(reported usage, output text bytes) of a non-streamed response body."""
    usage, output_bytes, _ = read_answer(raw)
    return usage, output_bytes


def read_answer(raw: bytes) -> tuple[Usage | None, int, dict[str, Any] | None]:
    """`meter_body`, and the body as parsed (None if it is not a JSON object), for an
    answer that gets its cost written in."""
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None, len(raw), None
    if not isinstance(payload, dict):
        return None, len(raw), None
    return usage_from(payload.get("usage")), _output_bytes(payload), payload


def error_body(err: RelayError) -> dict[str, Any]:
    return {
        "error": {
            "message": err.message,
            "type": err.type,
            "param": err.param,
            "code": err.code,
        }
    }


def stream_error_event(err: RelayError) -> bytes:
    return b"data: " + orjson.dumps(error_body(err)) + _SEP


def _output_bytes(obj: dict[str, Any]) -> int:
    total = 0
    choices = obj.get("choices")
    if not isinstance(choices, list):
        return 0
    for choice in choices:
        if not isinstance(choice, dict):
            continue
        text = choice.get("text")
        if isinstance(text, str):
            total += len(text.encode())
        delta = choice.get("delta") or choice.get("message")
        if not isinstance(delta, dict):
            continue
        for field in ("content", "reasoning_content", "refusal"):
            value = delta.get(field)
            if isinstance(value, str):
                total += len(value.encode())
        calls = delta.get("tool_calls")
        for call in calls if isinstance(calls, list) else ():
            fn = call.get("function") if isinstance(call, dict) else None
            if isinstance(fn, dict):
                for field in ("name", "arguments"):
                    value = fn.get(field)
                    if isinstance(value, str):
                        total += len(value.encode())
    return total


class StreamMeter:
    """Reads an OpenAI SSE stream as it passes: usage, output size, and the end marker.

    `feed` returns the bytes to forward: complete events only, minus the usage-only chunk
    when TokenHub (not the client) asked for it. With a QUOTE, the usage-only chunk is
    held back until `[DONE]` (or the stream's end) and then re-serialised with the call's
    cost in `usage.cost`; it is the only chunk re-serialised. Without one, an upstream's
    own `usage.cost` is removed (it is the operator's cost, not the caller's).
    """

    __slots__ = ("_buf", "_held", "done", "output_bytes", "quote", "strip_usage_chunk", "usage")

    def __init__(self, strip_usage_chunk: bool, quote: cost.Quote | None = None) -> None:
        self.strip_usage_chunk = strip_usage_chunk
        self.quote = quote
        self._buf = b""
        self._held: dict[str, Any] | None = None  # the usage-only chunk, awaiting its cost
        self.usage: Usage | None = None
        self.output_bytes = 0
        self.done = False

    def feed(self, chunk: bytes) -> bytes:
        data = self._buf + chunk if self._buf else chunk
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n")
        end = data.rfind(_SEP)
        if end < 0:
            self._buf = data
            return b""
        complete, self._buf = data[: end + 2], data[end + 2 :]
        changed = False
        kept: list[bytes] = []
        for event in complete.split(_SEP)[:-1]:
            held = self._held
            out = self._inspect(event)
            if out is not event:
                changed = True
            # A held chunk goes out, with its cost, before whatever follows it: [DONE] as
            # a rule (then the meter has seen the end), or another usage chunk.
            if held is not None and (out is not None or self._held is not held):
                if self._held is held:
                    self._held = None
                kept.append(self._stamped(held))
                changed = True
            if out is not None:
                kept.append(out)
        if not changed:
            return complete
        return b"".join(e + _SEP for e in kept)

    def flush(self) -> bytes:
        rest, self._buf = self._buf, b""
        return self.release() + rest

    def release(self) -> bytes:
        """The usage chunk held back for its cost, if any (the stream ends here)."""
        held, self._held = self._held, None
        return self._stamped(held) + _SEP if held is not None else b""

    def _stamped(self, chunk: dict[str, Any]) -> bytes:
        if self.quote is not None:
            micros = self.quote(self.usage, self.output_bytes, self.done)
            cost.stamp(chunk, ("usage",), micros)
        return b"data: " + orjson.dumps(chunk)

    def _inspect(self, event: bytes) -> bytes | None:
        """Meter one event; the bytes to forward (EVENT itself when unchanged), or None
        when it must not be forwarded (or not yet)."""
        for line in event.split(b"\n"):
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                self.done = True
                continue
            try:
                obj = orjson.loads(data)
            except orjson.JSONDecodeError:
                continue
            if not isinstance(obj, dict):
                continue
            usage = obj.get("usage")
            if usage:
                self.usage = usage_from(usage)
                last = not obj.get("choices")
                if self.strip_usage_chunk and last:
                    return None
                if self.quote is not None and last and isinstance(usage, dict):
                    self._held = obj
                    return None
                if cost.stamp(obj, ("usage",), None):
                    self.output_bytes += _output_bytes(obj)
                    return b"data: " + orjson.dumps(obj)
            self.output_bytes += _output_bytes(obj)
        return event
