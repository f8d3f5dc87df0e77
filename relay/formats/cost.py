"""The cost of a call as its answer carries it (docs/protocols.md, "Cost of every call").

Headers hold exact decimals made from integer micro-USD. Bodies and stream events hold a
JSON number in USD in the usage object, as OpenRouter's `usage.cost`; which protocols
carry it, and where, is decided by what their official SDKs keep.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from billing.pricing import Usage
from money import micros_to_usd

COST_HEADER = "x-tokenhub-cost"
BALANCE_HEADER = "x-tokenhub-balance"
BILLED_TO_HEADER = "x-tokenhub-billed-to"
FIELD = "cost"

# What a stream's answer is billed, from (reported usage, output bytes, answer complete):
# the meter's state when the stream's last usage event goes out.
Quote = Callable[[Usage | None, int, bool], int]


def usd(micros: int) -> float:
    """MICROS as the JSON number in USD that SDKs read: a float only at this edge, and
    an exact one to print. The division is correctly rounded, and an amount under
    10^9 USD has at most 15 significant digits, which a double always prints back as the
    same decimal (1234 -> 0.001234)."""
    return micros / 1_000_000


def headers(*, charge: int, billed_to: str, balance: int | None) -> dict[str, str]:
    """The cost headers of a finished answer; the balance only when it is known."""
    found = {COST_HEADER: micros_to_usd(charge)}
    if billed_to:
        found[BILLED_TO_HEADER] = billed_to
    if balance is not None:
        found[BALANCE_HEADER] = micros_to_usd(balance)
    return found


def stamp(obj: dict[str, Any], path: tuple[str, ...], micros: int | None) -> bool:
    """Write the cost into the usage object at PATH in OBJ, or with MICROS None remove one
    an upstream put there (a key that hides costs must not see the upstream's either).
    Returns whether OBJ changed. No usage object: nothing to stamp."""
    usage: Any = obj
    for name in path:
        usage = usage.get(name) if isinstance(usage, dict) else None
    if not isinstance(usage, dict):
        return False
    if micros is None:
        if FIELD not in usage:
            return False
        del usage[FIELD]
        return True
    usage[FIELD] = usd(micros)
    return True


@dataclass(frozen=True, slots=True)
class StreamCarrier:
    """Which event of a protocol's stream carries the cost, and where in its JSON.

    `kinds`: the event's type, as its `event:` line or its data's leading `type` names it
    (matched on the bytes, before any parsing: a text that merely mentions the type
    further in must not match); `path`: the usage object inside the event's data.
    """

    kinds: tuple[str, ...]
    path: tuple[str, ...]
    starts: tuple[bytes, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        starts: list[bytes] = []
        for kind in self.kinds:
            name = kind.encode()
            starts += [b"event: " + name + b"\n", b"event:" + name + b"\n"]
            starts += [b'data: {"type":"' + name + b'"', b'data: {"type": "' + name + b'"']
        object.__setattr__(self, "starts", tuple(starts))

    def carries(self, event: bytes) -> bool:
        return event.startswith(self.starts)

    def stamp(self, event: bytes, micros: int | None) -> bytes:
        """EVENT (one SSE event, no separator) with its cost set, or removed when MICROS
        is None; unchanged if it has none to remove or its data is not a JSON object."""
        lines = event.split(b"\n")
        data = [n for n, line in enumerate(lines) if line.startswith(b"data:")]
        if not data:
            return event
        try:
            obj = orjson.loads(b"\n".join(lines[n][5:].removeprefix(b" ") for n in data))
        except orjson.JSONDecodeError:
            return event
        if not isinstance(obj, dict) or not stamp(obj, self.path, micros):
            return event
        kept = [line for n, line in enumerate(lines) if n not in data]
        return b"\n".join([*kept, b"data: " + orjson.dumps(obj)])
