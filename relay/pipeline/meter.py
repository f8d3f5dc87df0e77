"""Step 6: the usage to bill — the upstream's own report, else an estimate marked as such."""

from __future__ import annotations

from billing.pricing import Usage
from relay.tokens import text_tokens


def metered_usage(reported: Usage | None, *, prompt_estimate: int, output_bytes: int) -> Usage:
    if reported is not None and (reported.input_tokens or reported.output_tokens):
        return reported
    return Usage(
        input_tokens=prompt_estimate,
        output_tokens=text_tokens(output_bytes),
        estimated=True,
    )
