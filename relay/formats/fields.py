"""The field policy: what becomes of each field of a request served by another protocol.

Each inbound protocol's module declares one `Table` of its request fields. When a call
is translated, every field the client sent is looked up for the channel's protocol:

- translated: carried into the target's terms by the converter;
- advisory: its absence cannot make a correct answer wrong (a sampling hint, a cache or
  context-management hint, bookkeeping): dropped, and its name reported to the caller
  (`X-TokenHub-Dropped-Params`) and in the request log (names only, never values);
- semantic: dropping it would mislead the caller: refused with a 400 naming the field.

A field the table does not know is advisory. A channel marked strict refuses advisory
fields too. Values that ask for nothing (null or empty by default; a rule's `inert`
values, such as `n: 1`) are neither dropped nor refused. Same-protocol calls pass
through and skip all this.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from relay.formats.ir import TranslationError

# The target protocols a rule can single out (relay.protocols.WireProtocol.name).
TARGETS = ("openai", "responses", "anthropic", "gemini")
MAX_REPORTED = 24
# A reported name must be safe in an HTTP header and a log column.
_SAFE_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


class Kind(StrEnum):
    TRANSLATED = "translated"
    ADVISORY = "advisory"
    SEMANTIC = "semantic"


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, list | dict | str) and not value)


@dataclass(frozen=True, slots=True)
class Rule:
    kind: Kind
    # The kind for particular target protocols, where it differs.
    targets: Mapping[str, Kind] = field(default_factory=dict)
    # Values that ask for nothing beyond the protocol's default.
    inert: Callable[[Any], bool] = _empty
    # Why, in a few words, for errors and docs/protocols.md.
    note: str = ""
    # The fields of an object value, looked up the same way (e.g. generationConfig).
    nested: Table | None = None

    def kind_for(self, target: str) -> Kind:
        return self.targets.get(target, self.kind)


def translated(
    note: str = "", *, nested: Table | None = None, inert: Callable[[Any], bool] = _empty,
    **targets: Kind,
) -> Rule:  # fmt: skip
    return Rule(Kind.TRANSLATED, targets, inert, note, nested)


def advisory(note: str = "", *, inert: Callable[[Any], bool] = _empty, **targets: Kind) -> Rule:
    return Rule(Kind.ADVISORY, targets, inert, note)


def semantic(note: str, *, inert: Callable[[Any], bool] = _empty, **targets: Kind) -> Rule:
    return Rule(Kind.SEMANTIC, targets, inert, note)


@dataclass(frozen=True, slots=True)
class Table:
    rules: Mapping[str, Rule]
    # Fields the converter reads from elsewhere (the URL) or that never reach it.
    unknown: Rule = field(default_factory=lambda: advisory("not a field TokenHub knows"))

    def rule(self, name: str) -> Rule:
        return self.rules.get(name, self.unknown)


@dataclass(frozen=True, slots=True)
class Screened:
    """The body the converter may read (advisory fields removed) and what was dropped."""

    body: dict[str, Any]
    dropped: tuple[str, ...]


def screen(table: Table, body: dict[str, Any], *, target: str, strict: bool) -> Screened:
    """Apply TABLE to BODY for a TARGET protocol; raise TranslationError on a refusal."""
    dropped: list[str] = []
    out = _screen(table, body, target, strict, "", dropped)
    return Screened(out, tuple(dropped))


def _screen(
    table: Table, body: dict[str, Any], target: str, strict: bool, prefix: str,
    dropped: list[str],
) -> dict[str, Any]:  # fmt: skip
    kept = dict(body)  # translation only: the pass-through paths never come here
    for name, value in body.items():
        rule = table.rule(name)
        if rule.inert(value):
            continue
        path = prefix + name
        kind = rule.kind_for(target)
        if kind is Kind.TRANSLATED:
            if rule.nested is not None and isinstance(value, dict):
                kept[name] = _screen(rule.nested, value, target, strict, path + ".", dropped)
            continue
        if kind is Kind.SEMANTIC or strict:
            raise TranslationError(_refusal(path, rule, strict=kind is Kind.ADVISORY))
        del kept[name]
        dropped.append(path)
    return kept


def _shown(path: str) -> str:
    """A field's name for an error text, if it is safe to repeat there."""
    return f"'{path}'" if _SAFE_NAME.fullmatch(path) else "A field"


def strict_refusal(path: str) -> str:
    shown = _shown(path)
    return (
        f"{shown} cannot be sent to this model's provider, and this channel refuses "
        "the fields it would drop."
    )


def _refusal(path: str, rule: Rule, *, strict: bool) -> str:
    if strict:
        return strict_refusal(path)
    shown = _shown(path)
    reason = f" ({rule.note})" if rule.note else ""
    return f"{shown} cannot be sent to this model's provider{reason}."


def header_value(dropped: tuple[str, ...]) -> str:
    """The dropped names as one header value: safe names only, at most MAX_REPORTED."""
    names = [n for n in dropped if _SAFE_NAME.fullmatch(n)]
    unnamed = len(dropped) - len(names)
    if unnamed:
        names.append(f"({unnamed} unnamed)")
    if len(names) > MAX_REPORTED:
        names = [*names[:MAX_REPORTED], f"(+{len(names) - MAX_REPORTED} more)"]
    return ",".join(names)


_PROTOCOL_TITLES = {
    "openai": "OpenAI Chat",
    "responses": "Responses",
    "anthropic": "Anthropic",
    "gemini": "Gemini",
}


def markdown(tables: Mapping[str, Table]) -> str:
    """docs/protocols.md's field tables, one per inbound protocol (a test keeps them equal)."""
    out: list[str] = []
    for source, table in tables.items():
        targets = [t for t in TARGETS if t != source]
        out.append(f"### {_PROTOCOL_TITLES[source]} requests\n")
        out.append("| field | " + " | ".join(_PROTOCOL_TITLES[t] for t in targets) + " | note |")
        out.append("|---" * (len(targets) + 2) + "|")
        for path, rule in _walk(table, ""):
            cells = [rule.kind_for(t).value for t in targets]
            out.append(f"| `{path}` | " + " | ".join(cells) + f" | {rule.note} |")
        out.append("")
    return "\n".join(out)


def _walk(table: Table, prefix: str) -> list[tuple[str, Rule]]:
    rows: list[tuple[str, Rule]] = []
    for name, rule in table.rules.items():
        rows.append((prefix + name, rule))
        if rule.nested is not None:
            rows.extend(_walk(rule.nested, prefix + name + "."))
    return rows
