"""The real coding agents, one turn each through TokenHub: Claude Code, Codex CLI, Gemini CLI.

Each agent (installed by scripts/ensure-agents.sh from tests/agents/package-lock.json) runs
headless with its own temporary HOME, against TokenHub on loopback, which forwards to the
fake upstream through a channel of the type under test. The fake answers the first call
with a tool call the agent really has (reading a file in the temporary workspace), and
once the tool's result comes back, with FINAL_TEXT: the turn ends.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from billing.pricing import PriceSheet, Usage, cost_micros
from billing.services import price_set
from logs.models import RequestLog
from relay.pipeline.settle import pending as settle_pending
from relay.services import channel_create
from tests.fakes.upstream import FakeUpstream, RecordedRequest, ToolCall
from tests.fakes.upstream import Usage as FakeUsage
from tests.relay.conftest import Customer, wait_for
from tests.relay.test_privacy import _database_text

AGENTS_BIN = Path(__file__).resolve().parents[2] / "agents" / "node_modules" / ".bin"
CHANNEL_TYPES = ("anthropic", "openai", "openai-responses", "gemini")
AGENT_TIMEOUT = 120.0  # seconds; a hung agent fails its test instead of blocking the suite
FINAL_TEXT = "Done: the notes file has been read. TURN-FINISHED"

# (agent, channel type) -> what TokenHub answers today when that turn fails: part of its
# error message, which the agent prints. Strict: a fix makes the test XPASS, which fails
# the run until the entry is deleted here; a turn failing any other way fails as usual.
# Per million tokens, in micro-USD. The Claude models carry Anthropic's list prices, the
# ones Claude Code's own total_cost_usd is computed from.
PRICES: dict[str, dict[str, int]] = {
    "claude-sonnet-4-5": {
        "input_per_1m": 3_000_000,
        "output_per_1m": 15_000_000,
        "cache_read_per_1m": 300_000,
        "cache_write_per_1m": 3_750_000,
    },
    "claude-haiku-4-5": {
        "input_per_1m": 1_000_000,
        "output_per_1m": 5_000_000,
        "cache_read_per_1m": 100_000,
        "cache_write_per_1m": 1_250_000,
    },
    "gpt-4o": {"input_per_1m": 2_500_000, "output_per_1m": 10_000_000},
    "gemini-2.5-flash": {"input_per_1m": 300_000, "output_per_1m": 2_500_000},
}


@dataclass(frozen=True)
class Agent:
    """What differs between the agents: the model they ask for, and the read-only tool the
    fake calls (a name they really offer, arguments they accept) on a file in WORKSPACE."""

    name: str
    model: str
    tool: Callable[[Path], ToolCall]
    native: str  # the channel type that speaks the agent's own protocol (pass-through)
    # Hints the agent sends that another protocol cannot carry, by channel type (else
    # `dropped`): each log row and response header must name them (docs/protocols.md).
    dropped: frozenset[str] = frozenset()
    dropped_for: dict[str, frozenset[str]] = field(default_factory=dict)
    side_models: tuple[str, ...] = ()  # other models the agent may call (titles, checks)

    def expected_dropped(self, channel_type: str) -> frozenset[str]:
        if channel_type == self.native:
            return frozenset()
        return self.dropped_for.get(channel_type, self.dropped)


AGENTS = {
    "claude": Agent(
        name="claude",
        model="claude-sonnet-4-5",
        native="anthropic",
        dropped=frozenset({"context_management"}),
        side_models=("claude-haiku-4-5",),
        tool=lambda notes: ToolCall("Read", {"file_path": str(notes)}, id="toolu_agents01"),
    ),
    "codex": Agent(
        name="codex",
        model="gpt-4o",
        native="openai-responses",
        dropped=frozenset(
            {"include", "prompt_cache_key", "client_metadata", "reasoning.summary"}
            | {"tools.web_search"}
        ),
        # The shell is Codex's only file tool; `cat` runs in its read-only sandbox.
        tool=lambda notes: ToolCall("exec_command", {"cmd": f"cat {notes.name}"}, id="call_01"),
    ),
    "gemini": Agent(
        name="gemini",
        model="gemini-2.5-flash",
        native="gemini",
        # topK is translated for Anthropic, which has it.
        dropped=frozenset({"generationConfig.topK"}),
        dropped_for={"anthropic": frozenset()},
        tool=lambda notes: ToolCall("read_file", {"file_path": str(notes)}, id="call_01"),
    ),
}


# Every agent runs through every channel type.
EVERY_CHANNEL_TYPE = [pytest.param(kind, id=kind) for kind in CHANNEL_TYPES]


def agent_binary(name: str) -> Path:
    """The installed agent; a skip with the remedy when it is missing, a failure in CI."""
    binary = AGENTS_BIN / name
    if not os.access(binary, os.X_OK):
        message = f"{name} is not installed in {AGENTS_BIN}: run scripts/ensure-agents.sh"
        if os.environ.get("CI") == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return binary


@dataclass(frozen=True)
class Finished:
    returncode: int
    stdout: str
    stderr: str


@dataclass
class AgentTurn:
    """One agent turn through TokenHub on a channel of CHANNEL_TYPE, and its checks."""

    agent: Agent
    channel_type: str
    customer: Customer
    fake: FakeUpstream
    home: Path
    workspace: Path
    notes: Path  # the file the tool call reads
    marker: str  # its content: must come back to the model as the tool's result
    canary: str  # in the prompt: must reach the upstream, and never TokenHub's storage
    balance_before: int

    @property
    def prompt(self) -> str:
        return f"Read {self.notes.name} and tell me what it says. Reference {self.canary}."

    def env(self, **extra: str) -> dict[str, str]:
        """A clean environment: this turn's HOME, loopback only, nothing from the suite."""
        base = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "HOME": str(self.home),
            "XDG_CONFIG_HOME": str(self.home / ".config"),
            "XDG_CACHE_HOME": str(self.home / ".cache"),
            "XDG_DATA_HOME": str(self.home / ".local" / "share"),
            "XDG_STATE_HOME": str(self.home / ".local" / "state"),
            "TMPDIR": str(self.home / "tmp"),
            "LANG": "C.UTF-8",
            "TERM": "dumb",
            "NO_COLOR": "1",
            "NO_PROXY": "127.0.0.1,localhost",
        }
        (self.home / "tmp").mkdir(exist_ok=True)
        return base | extra

    def run(self, args: list[str], env: dict[str, str]) -> Finished:
        """Run the agent in the workspace; kill its whole process group on timeout."""
        process = subprocess.Popen(
            [str(agent_binary(self.agent.name)), *args],
            cwd=self.workspace,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            stdout, stderr = process.communicate(timeout=AGENT_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            stdout, stderr = process.communicate()
            pytest.fail(
                f"{self.agent.name} did not finish within {AGENT_TIMEOUT:g}s\n"
                + self._tail(stdout, stderr)
            )
        return Finished(process.returncode, stdout, stderr)

    def _tail(self, stdout: str, stderr: str) -> str:
        # The agents echo the prompt: keep the canary out of the test report as well.
        text = f"--- stdout\n{stdout[-3000:]}\n--- stderr\n{stderr[-3000:]}"
        return text.replace(self.canary, "<canary>")

    def check(
        self,
        finished: Finished,
        caplog: pytest.LogCaptureFixture,
        capfd: pytest.CaptureFixture[str],
    ) -> int:
        """The turn finished after the tool ran, was charged exactly from the upstream's
        usage with one log row per upstream call, and stored no prompt. Returns the charge."""
        report = self._tail(finished.stdout, finished.stderr)
        assert finished.returncode == 0, report
        assert FINAL_TEXT in finished.stdout, report

        # The fake records an outcome once it finished writing, a moment after TokenHub read.
        calls = self.fake.wait_until(lambda calls: all(c.outcome != "pending" for c in calls))
        assert calls, "nothing reached the upstream"
        assert [c.outcome for c in calls] == ["ok"] * len(calls), _describe(calls)
        tool_calls = [i for i, c in enumerate(calls) if c.tool_called]
        assert tool_calls, "the fake never answered with the tool call: " + _describe(calls)
        # The agent ran the tool and sent its result back to the model.
        assert any(self.marker in _dump(c.json) for c in calls[tool_calls[0] + 1 :]), (
            "no request after the tool call carries the tool's result: " + _describe(calls)
        )
        assert any(self.canary in _dump(c.json) for c in calls), "the prompt never arrived"

        logs = self._settled(rows=len(calls))
        assert len(logs) == len(calls), (
            f"{len(logs)} log rows for {len(calls)} upstream calls: "
            + ", ".join(f"{log.endpoint} {log.status_code}" for log in logs)
        )
        assert all(log.status_code == 200 and not log.usage_estimated for log in logs)
        dropped = self.agent.expected_dropped(self.channel_type)
        for log in logs:
            named = set(log.dropped_params.split(",")) - {""}
            assert dropped <= named, f"{log.endpoint}: dropped {named}, expected {dropped}"
            if not dropped:
                assert not named, f"{log.endpoint}: dropped {named} on a native channel"

        expected = sum(_cost(call) for call in calls)
        charged = self.balance_before - self.customer.balance()
        assert charged == expected
        assert sum(log.cost for log in logs) == expected
        self._assert_private(caplog, capfd)
        return charged

    def _settled(self, rows: int) -> list[RequestLog]:
        """The key's log rows once at least ROWS are written and no settlement is running."""
        key = self.customer.key.pk
        wait_for(lambda: RequestLog.objects.filter(api_key_id=key).count() >= rows)
        wait_for(lambda: not settle_pending())
        return list(RequestLog.objects.filter(api_key_id=key).order_by("created_at", "pk"))

    def _assert_private(
        self, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
    ) -> None:
        """The canary is in no table, no log record and nothing TokenHub printed."""
        assert self.canary not in _database_text()
        for record in caplog.records:
            assert self.canary not in record.getMessage()
            assert self.canary not in str(record.args)
        out, err = capfd.readouterr()
        assert self.canary not in out and self.canary not in err


def _dump(body: Any) -> str:
    return json.dumps(body, ensure_ascii=False)


def _describe(calls: list[RecordedRequest]) -> str:
    return "; ".join(
        f"{c.method} {c.path} {c.outcome}{' (tool call)' if c.tool_called else ''}" for c in calls
    )


def _cost(call: RecordedRequest) -> int:
    """What TokenHub must charge for CALL: the usage the fake reported, at the price sheet."""
    reported: FakeUsage | None = call.usage
    assert reported is not None, f"{call.path}: the fake reported no usage"
    usage = Usage(
        input_tokens=reported.prompt_tokens,
        output_tokens=reported.completion_tokens,
        cache_read_tokens=reported.cached_tokens,
        cache_write_tokens=reported.cache_write_tokens,
        reasoning_tokens=reported.reasoning_tokens,
    )
    return cost_micros(usage, PriceSheet(**PRICES[call.model or ""]), Decimal(1))


def _base_url(channel_type: str, fake: FakeUpstream) -> str:
    return fake.url + "/v1" if channel_type in ("openai", "openai-responses") else fake.url


@pytest.fixture
def agent_turn(
    request: pytest.FixtureRequest,
    channel_type: str,
    customer: Customer,
    fake: FakeUpstream,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> AgentTurn:
    """A funded customer, a priced model, a channel of CHANNEL_TYPE to the fake upstream
    (scripted for one tool round trip), and a temporary HOME and workspace for the agent of
    the requesting module (its AGENT)."""
    agent = AGENTS[request.module.AGENT]
    agent_binary(agent.name)  # skip (or fail in CI) before building anything
    caplog.set_level(logging.DEBUG)
    models = [agent.model, *agent.side_models]
    for model in models:
        price_set(model=model, **PRICES[model])
    channel_create(
        name=f"agents-{channel_type}",
        type=channel_type,
        base_url=_base_url(channel_type, fake),
        api_keys=["sk-upstream-agents"],
        models=models,
    )
    home, workspace = tmp_path / "home", tmp_path / "workspace"
    home.mkdir()
    workspace.mkdir()
    marker = f"TOOL-RESULT-{uuid.uuid4().hex[:12]}"
    notes = workspace / "notes.txt"
    notes.write_text(f"The notes say {marker}.\n", encoding="utf-8")
    fake.configure(tool_call=agent.tool(notes), tool_call_until_result=True, reply_text=FINAL_TEXT)
    return AgentTurn(
        agent=agent,
        channel_type=channel_type,
        customer=customer,
        fake=fake,
        home=home,
        workspace=workspace,
        notes=notes,
        marker=marker,
        canary=f"CANARY-{uuid.uuid4().hex}",
        balance_before=customer.balance(),
    )
