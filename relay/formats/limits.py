"""Bounds on the JSON that crosses protocols, so that what one side can read the other can
always write.

orjson reads JSON nested up to 1024 levels but writes at most 254, and integers up to
2**64 - 1 but no sums beyond them; Python code that walks JSON recursively has about
1000 frames. A body is refused (or an upstream's number ignored) before any of those
limits is reached.
"""

from __future__ import annotations

from typing import Any

import orjson

# Far beyond any real request (tool schemas nest a dozen levels), and far enough below
# orjson's 254 for a translation to wrap a value in a few more levels.
MAX_NESTING = 128

# More tokens than any one call uses; a larger count in a usage report is not a count.
MAX_TOKENS = 1_000_000_000


_CONTAINERS = (dict, list)


def nested_deeper_than(value: Any, limit: int = MAX_NESTING) -> bool:
    """Whether VALUE has lists and objects nested more than LIMIT levels deep (walked level
    by level, so any depth is safe to ask about)."""
    level = [value] if isinstance(value, _CONTAINERS) else []  # containers at one depth
    for _ in range(limit):
        below: list[Any] = []
        for node in level:
            for child in node.values() if isinstance(node, dict) else node:
                if isinstance(child, _CONTAINERS):
                    below.append(child)
        if not below:
            return False
        level = below
    return True


def json_object(text: str) -> dict[str, Any] | None:
    """The JSON object TEXT holds (tool call arguments, a tool's result), read as request
    bodies are read; None when it holds anything else or nests past MAX_NESTING."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(value, dict) or nested_deeper_than(value):
        return None
    return value


def token_count(value: Any) -> int:
    """A usage report's token count: a positive integer up to MAX_TOKENS, else 0."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_TOKENS:
        return value
    return 0
