"""Gemini CLI (`gemini -p`) finishes a turn with a tool call through every channel type."""

from __future__ import annotations

import json

import pytest

from tests.relay.agents.conftest import AGENTS, EVERY_CHANNEL_TYPE, AgentTurn

AGENT = "gemini"


@pytest.mark.parametrize("channel_type", EVERY_CHANNEL_TYPE)
def test_it_finishes_a_turn_with_a_tool_call(
    agent_turn: AgentTurn,
    channel_type: str,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    turn = agent_turn
    gemini_home = turn.home / ".gemini"
    gemini_home.mkdir()
    settings = {
        "security": {"auth": {"selectedType": "gemini-api-key"}},
        "privacy": {"usageStatisticsEnabled": False},
    }
    (gemini_home / "settings.json").write_text(json.dumps(settings), encoding="utf-8")
    env = turn.env(
        GEMINI_API_KEY=turn.customer.secret,
        GOOGLE_GEMINI_BASE_URL=turn.customer.relay.url,
        GEMINI_CLI_TRUST_WORKSPACE="true",
    )

    finished = turn.run(["-m", AGENTS[AGENT].model, "-p", turn.prompt], env)

    turn.check(finished, caplog, capfd)
