"""Bench-only ASGI entry: TokenHub with perf_counter timers around the relay's steps.

    uvicorn benchmarks.staged_app:application ...

Imports tokenhub.asgi, then replaces the pipeline functions the relay calls (looked up by
name at import time, so a refactor of relay/proxy.py only has to keep the names) with
wrappers that add their duration to the current request's record. GET /__bench/stages
answers the per-request records so far as JSON (``?reset=1`` clears them); every other
path goes to TokenHub unchanged. Never used outside benchmarks/.
"""

from __future__ import annotations

import contextvars
import functools
import importlib
import inspect
import sys
import time
from collections.abc import Callable
from typing import Any

import orjson

from tokenhub.asgi import application as tokenhub_application

# (stage, "defining.module:attribute"): the stage each wrapped call's time goes to;
# "a|b" tries A, then B (for names a refactor may move).
WRAPPED: tuple[tuple[str, str], ...] = (
    ("read body", "relay.asgi_io:read_body"),
    ("parse", "relay.formats.openai:parse_body"),
    ("authenticate", "relay.pipeline.authenticate:authenticate"),
    ("authorize", "relay.pipeline.authorize:authorize"),
    ("authorize", "relay.pipeline.authorize:authorize_model"),
    ("rate limit", "relay.pipeline.authorize:check_rate_limits"),
    ("route and price", "relay.pipeline.route:candidates"),
    ("route and price", "relay.catalog:catalog.price"),
    ("hold", "relay.pipeline.reserve:reserve"),
    ("upstream first byte", "relay.pipeline.forward:send"),
    ("upstream body, meter, write", "relay.proxy:_relay_body|relay.pipeline.frame:_relay_body"),
    ("write the answer", "relay.asgi_io:send_bytes"),
    ("settle (after the answer)", "relay.proxy:_finish|relay.pipeline.settle:finish"),
    ("relay handler", "relay.proxy:proxy"),
)
# (mark, "module:attribute"): the time from the request's start to the first call, once.
MARKS: tuple[tuple[str, str], ...] = (("first chunk sent", "relay.asgi_io:send_chunk"),)
SCANNED = ("relay", "billing", "tokenhub", "accounts", "logs")  # modules whose names we rebind
MAX_RECORDS = 200_000

_record: contextvars.ContextVar[dict[str, int] | None] = contextvars.ContextVar(
    "bench_stage_record", default=None
)
_records: list[dict[str, int]] = []


def _add(stage: str, started: int) -> None:
    record = _record.get()
    if record is not None:
        record[stage] = record.get(stage, 0) + time.perf_counter_ns() - started
        record["#"] = record.get("#", 0) + 1  # wrapped calls: what the timers cost in all


def _timed(stage: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def timed_async(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter_ns()
            try:
                return await fn(*args, **kwargs)
            finally:
                _add(stage, started)

        return timed_async

    @functools.wraps(fn)
    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter_ns()
        try:
            return fn(*args, **kwargs)
        finally:
            _add(stage, started)

    return timed


def _marked(mark: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def marked(*args: Any, **kwargs: Any) -> Any:
        record = _record.get()
        if record is not None and mark not in record:
            record[mark] = time.perf_counter_ns() - record.get("@start", 0)
        return await fn(*args, **kwargs)

    return marked


def _resolve(specs: str) -> tuple[Any, str, Any]:
    """(owner object, attribute name, original) for the first of "module:a.b|..." found,
    or a clear failure naming what is missing."""
    failures = []
    for spec in specs.split("|"):
        try:
            return _resolve_one(spec)
        except RuntimeError as exc:
            failures.append(str(exc))
    raise RuntimeError("; ".join(failures))


def _resolve_one(spec: str) -> tuple[Any, str, Any]:
    module_name, _, path = spec.partition(":")
    try:
        owner: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise RuntimeError(f"staged_app: cannot import {module_name} for {spec}: {exc}") from None
    *parents, name = path.split(".")
    for part in parents:
        owner = getattr(owner, part, None)
        if owner is None:
            raise RuntimeError(f"staged_app: {spec} is gone ({part} missing); update WRAPPED")
    original = getattr(owner, name, None)
    if original is None or not callable(original):
        raise RuntimeError(f"staged_app: {spec} is gone; update WRAPPED in {__file__}")
    return owner, name, original


def install() -> int:
    """Wrap every WRAPPED function wherever it is bound by name; returns the rebinds made."""
    rebinds = 0
    Wrap = Callable[[str, Callable[..., Any]], Callable[..., Any]]
    wrappers: list[tuple[str, str, Wrap]] = [(stage, spec, _timed) for stage, spec in WRAPPED]
    wrappers += [(mark, spec, _marked) for mark, spec in MARKS]
    for stage, spec, wrap in wrappers:
        owner, name, original = _resolve(spec)
        wrapper = wrap(stage, original)
        if inspect.ismodule(owner):
            for module_name, module in list(sys.modules.items()):
                if module is None or not module_name.startswith(SCANNED):
                    continue
                for attr, value in list(vars(module).items()):
                    if value is original:
                        setattr(module, attr, wrapper)
                        rebinds += 1
        else:  # a bound method of a module-level object (catalog.price)
            setattr(owner, name, wrapper)
            rebinds += 1
    return rebinds


def wrapper_overhead_ns(rounds: int = 200_000) -> float:
    """Extra ns one wrapped async call costs over a plain one (timer pair + record update)."""

    async def plain() -> None:
        return None

    timed = _timed("overhead probe", plain)
    token = _record.set({})

    def run(fn: Callable[[], Any]) -> int:
        started = time.perf_counter_ns()
        for _ in range(rounds):
            coro = fn()
            try:  # noqa: SIM105  (cheaper than contextlib.suppress in a timed loop)
                coro.send(None)
            except StopIteration:
                pass
        return time.perf_counter_ns() - started

    try:
        run(plain), run(timed)  # warm up
        return (run(timed) - run(plain)) / rounds
    finally:
        _record.reset(token)


REBINDS = install()
OVERHEAD_NS = wrapper_overhead_ns()


async def _answer(send: Any, payload: Any) -> None:
    body = orjson.dumps(payload)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        await tokenhub_application(scope, receive, send)
        return
    if scope["path"] == "/__bench/stages":
        payload = {"records": _records, "rebinds": REBINDS, "overhead_ns": OVERHEAD_NS}
        await _answer(send, payload)
        if b"reset=1" in scope.get("query_string", b""):
            _records.clear()
        return
    started = time.perf_counter_ns()
    record: dict[str, int] = {"@start": started}
    token = _record.set(record)
    try:
        await tokenhub_application(scope, receive, send)
    finally:
        record["asgi app"] = time.perf_counter_ns() - started
        _record.reset(token)
        if len(_records) < MAX_RECORDS and scope["path"].startswith("/v1/chat"):
            _records.append(record)
