"""Claude Code (`claude -p`) finishes a turn with a tool call through every channel type."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from tests.relay.agents.conftest import AGENTS, EVERY_CHANNEL_TYPE, AgentTurn

AGENT = "claude"


@pytest.mark.parametrize("channel_type", EVERY_CHANNEL_TYPE)
def test_it_finishes_a_turn_with_a_tool_call(
    agent_turn: AgentTurn,
    channel_type: str,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    turn = agent_turn
    env = turn.env(
        ANTHROPIC_BASE_URL=turn.customer.relay.url,
        ANTHROPIC_API_KEY=turn.customer.secret,
        ANTHROPIC_MODEL=AGENTS[AGENT].model,
        ANTHROPIC_DEFAULT_HAIKU_MODEL=AGENTS[AGENT].side_models[0],
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
        DISABLE_TELEMETRY="1",
        DISABLE_AUTOUPDATER="1",
        DISABLE_ERROR_REPORTING="1",
    )

    finished = turn.run(["-p", turn.prompt, "--output-format", "json"], env)

    charged = turn.check(finished, caplog, capfd)
    result = json.loads(finished.stdout)
    assert (result["subtype"], result["is_error"]) == ("success", False)
    # Claude Code prices the usage it was told at Anthropic's list prices, which the price
    # sheet holds: both sides agree to the micro-dollar, whatever protocol carried it.
    assert round(Decimal(str(result["total_cost_usd"])) * 10**6) == charged
