"""How a provider's model names are matched to the upstream model names TokenHub recorded.

Providers bill dated snapshots ("gpt-4o-2024-08-06", "claude-sonnet-4-20250514",
OpenRouter's "openai/gpt-4o-2024-08-06" permaslugs) while a request records the name the
channel was asked for ("gpt-4o", "claude-sonnet-4"). Names are matched exactly first; what
is left is matched by `model_key`: lower-cased, with a trailing snapshot date removed
("-2024-08-06", "-20250514", "@20240620" as Vertex writes it, and OpenAI's older
"-0613"/"-0125" month-day form). Two names with the same key on the same day are summed.
"""

from __future__ import annotations

import re

_DATE_SUFFIX = re.compile(
    r"[-@](?:\d{4}-\d{2}-\d{2}|20\d{2}[01]\d[0-3]\d|(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01]))$"
)
_SEPARATORS = re.compile(r"[\s.]+")


def model_key(name: str) -> str:
    """The name a snapshot and its alias share: 'GPT-4o-2024-08-06' -> 'gpt-4o'."""
    return _DATE_SUFFIX.sub("", name.strip().lower())


def model_from_display_name(name: str) -> str:
    """The Anthropic Console's display name as an API model id: 'Claude Haiku 4.5' ->
    'claude-haiku-4-5', 'Claude 3.5 Sonnet' -> 'claude-3-5-sonnet'. A name that is
    already an id comes back lower-cased and otherwise unchanged."""
    return _SEPARATORS.sub("-", name.strip().lower()).strip("-")
