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


def _text_bytes(value: Any) -> tuple[int, int]:
    """(text bytes, image count) inside a message content or any JSON value."""
    if isinstance(value, str):
        return len(value.encode()), 0
    if isinstance(value, list):
        total, images = 0, 0
        for item in value:
            b, i = _text_bytes(item)
            total, images = total + b, images + i
        return total, images
    if isinstance(value, dict):
        kind = value.get("type")
        if kind in {"image_url", "input_image", "image"} or not {
            "inline_data",
            "inlineData",
            "fileData",
        }.isdisjoint(value):
            return 0, 1  # base64 payloads are not text: count the image instead
        total, images = 0, 0
        for key, item in value.items():
            if key in {"type", "role", "id"}:
                continue
            b, i = _text_bytes(item)
            total, images = total + b, images + i
        return total, images
    return 0, 0


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
