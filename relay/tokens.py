"""Token estimates for holds and for upstreams that report no usage.

No tokenizer files can be fetched at run time, so estimates come from UTF-8 byte counts:
about 4 bytes per token for English and code, about 3 for CJK text (3 bytes a character,
roughly one token each). Holds use the pessimistic 3; billing estimates use 4. Any row
billed from an estimate is marked `usage_estimated`.
"""

from __future__ import annotations

from typing import Any

HOLD_BYTES_PER_TOKEN = 3
ESTIMATE_BYTES_PER_TOKEN = 4
IMAGE_TOKENS = 1_000  # a high-detail image costs ~765-1,105 tokens on OpenAI
PER_MESSAGE_TOKENS = 4


_IMAGE_TYPES = frozenset({"image_url", "input_image", "image"})
_IMAGE_KEYS = frozenset({"inline_data", "inlineData", "fileData"})
_SKIPPED_KEYS = frozenset({"type", "role", "id"})


def _text_bytes(value: Any) -> tuple[int, int]:
    """(text bytes, image count) inside a message content or any JSON value.

    A walk with its own stack: a body may nest as deep as the JSON parser allows (1024
    levels for orjson), deeper than Python's recursion limit.
    """
    total, images = 0, 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item.encode())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            # "type" may be anything, e.g. a tool schema's property named "type".
            kind = item.get("type")
            if (isinstance(kind, str) and kind in _IMAGE_TYPES) or not _IMAGE_KEYS.isdisjoint(item):
                images += 1  # base64 payloads are not text: count the image instead
                continue
            for key, child in item.items():
                if key not in _SKIPPED_KEYS:
                    stack.append(child)
    return total, images


def prompt_tokens(payload: dict[str, Any], *, bytes_per_token: int) -> int:
    """Estimate the prompt of any request body (chat messages, prompt, input, tools)."""
    total = 0
    images = 0
    messages = payload.get("messages")
    if isinstance(messages, list):
        total += PER_MESSAGE_TOKENS * len(messages) * bytes_per_token
    fields = ("messages", "prompt", "input", "tools", "system", "contents", "instructions")
    # Gemini: systemInstruction; embedContent: content; batchEmbedContents: requests.
    for field in (*fields, "systemInstruction", "content", "requests"):
        if field in payload:
            b, i = _text_bytes(payload[field])
            total, images = total + b, images + i
    return -(-total // bytes_per_token) + images * IMAGE_TOKENS


def text_tokens(n_bytes: int) -> int:
    return -(-n_bytes // ESTIMATE_BYTES_PER_TOKEN)


# What providers add to a prompt that its bytes do not show: role and reply framing, and,
# when tools are offered, the tool-use instructions some providers prepend (Anthropic's
# run to several hundred tokens). Holds add it so that a charge, capped by its hold,
# is not cut short by a count the estimate could not see.
HOLD_BASE_TOKENS = 32
HOLD_TOOLS_TOKENS = 1_000


def hold_overhead(payload: dict[str, Any]) -> int:
    """Tokens a hold adds to the prompt estimate of PAYLOAD for hidden framing."""
    tools = payload.get("tools")
    return HOLD_BASE_TOKENS + (HOLD_TOOLS_TOKENS if tools else 0)
