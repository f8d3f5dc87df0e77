"""Step 8: the usage to bill — the upstream's own report, else an estimate marked as such."""

from __future__ import annotations

import dataclasses

from billing.pricing import Usage
from relay.tokens import text_tokens


def metered_usage(
    reported: Usage | None, *, prompt_estimate: int, output_bytes: int, complete: bool = True
) -> Usage:
    """COMPLETE is False for a stream cut before its protocol's last event: the upstream's
    report may then predate most of the output (Anthropic reports output at the end), so
    the output is at least what the client was sent."""
    delivered = text_tokens(output_bytes)
    if reported is not None and (reported.input_tokens or reported.output_tokens):
        if complete or reported.output_tokens >= delivered:
            return reported
        return dataclasses.replace(reported, output_tokens=delivered, estimated=True)
    return Usage(input_tokens=prompt_estimate, output_tokens=delivered, estimated=True)
