"""Codex CLI (`codex exec`) finishes a turn with a tool call through every channel type."""

from __future__ import annotations

import pytest

from tests.relay.agents.conftest import AGENTS, EVERY_CHANNEL_TYPE, AgentTurn

AGENT = "codex"


@pytest.mark.parametrize("channel_type", EVERY_CHANNEL_TYPE)
def test_it_finishes_a_turn_with_a_tool_call(
    agent_turn: AgentTurn,
    channel_type: str,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    turn = agent_turn
    codex_home = turn.home / ".codex"
    codex_home.mkdir()
    (codex_home / "config.toml").write_text(
        f'model = "{AGENTS[AGENT].model}"\n'
        'model_provider = "tokenhub"\n'
        "check_for_update_on_startup = false\n"
        "[model_providers.tokenhub]\n"
        'name = "TokenHub"\n'
        f'base_url = "{turn.customer.base_url}"\n'
        'env_key = "TOKENHUB_API_KEY"\n'
        'wire_api = "responses"\n'
        # No retries: an error is TokenHub's answer to check, not a blip on loopback.
        "request_max_retries = 0\n"
        "stream_max_retries = 0\n",
        encoding="utf-8",
    )
    env = turn.env(TOKENHUB_API_KEY=turn.customer.secret, CODEX_HOME=str(codex_home))

    finished = turn.run(["exec", "--skip-git-repo-check", "--color", "never", turn.prompt], env)

    turn.check(finished, caplog, capfd)
