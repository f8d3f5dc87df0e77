"""OpenRouter's per-generation costs, summed per UTC day and model into bill lines.

Supported:

- Generation records from `GET /api/v1/generation?id=...`: the response `{"data": {"id",
  "created_at", "model", "total_cost", "tokens_prompt", "tokens_completion", ...}}`, or its
  `data` object alone, as one document, a JSON list, or one a line (JSON Lines), the way
  an operator collects them. `total_cost` is in USD; `created_at` is ISO 8601 with an
  offset.
- The Activity page's CSV export: columns `generation_id, created_at, cost_total,
  cost_web_search, cost_cache, cost_file_processing, byok_usage_inference, tokens_prompt,
  tokens_completion, tokens_reasoning, tokens_cached, model_permaslug, provider_name,
  variant, cancelled, streamed, user, finish_reason_raw, finish_reason_normalized,
  generation_time_ms, time_to_first_token_ms, api_key_disabled, api_key_name, app_name`.
  Required: `created_at` ("2026-02-06 18:54:30.040", UTC), `cost_total` (USD) and
  `model_permaslug` (a dated slug such as "openai/gpt-4o-2024-08-06", matched to the
  recorded model by dropping the date: see model_names).

Each generation counts as one request. A generation id seen twice is refused: the same
generation would otherwise be billed twice. For BYOK generations `cost_total` is
OpenRouter's fee only; the provider's own charge is not in the export.

Where the shapes come from: OpenRouter's API reference "Get a generation" and its SDK's
GenerationResponse example (total_cost, created_at "2024-07-15T23:33:19.433273+00:00",
tokens_prompt, tokens_completion), the "Activity Export" guide (CSV from the Activity
page), and the export header and timestamp format seen in public parsers of it
(CodexClawd/codexclawd skills/openrouter-analyzer, and others).
"""

from __future__ import annotations

from typing import Any

from relay.upstream_bills.lines import (
    BillFormatError,
    BillLine,
    RawLine,
    count_read,
    decimal_read,
    lines_aggregate,
)
from relay.upstream_bills.reading import (
    MAX_ROWS,
    as_object,
    as_text,
    csv_rows,
    json_documents,
    moment_from_iso,
)

WHAT_CSV = "OpenRouter activity CSV"
WHAT_JSON = "OpenRouter generations JSON"


class _Ids:
    """Refuses a generation id seen before."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.seen: set[str] = set()

    def add(self, gen_id: str, where: str) -> None:
        if not gen_id:
            return
        if gen_id in self.seen:
            raise BillFormatError(f"{where}: generation {gen_id[:60]!r} appears twice")
        self.seen.add(gen_id)


def parse_activity_csv(data: bytes | str) -> list[BillLine]:
    raw = []
    ids = _Ids(WHAT_CSV)
    required = ("created_at", "cost_total", "model_permaslug")
    for row in csv_rows(data, what=WHAT_CSV, required=required):
        ids.add(row.get("generation_id"), f"{WHAT_CSV}: line {row.line}")
        raw.append(
            RawLine(
                day=moment_from_iso(row.get("created_at"), row.where("created_at")).date(),
                model=row.get("model_permaslug")[:200],
                usd=decimal_read(row.get("cost_total"), row.where("cost_total")),
                input_tokens=count_read(row.get("tokens_prompt"), row.where("tokens_prompt")),
                output_tokens=count_read(
                    row.get("tokens_completion"), row.where("tokens_completion")
                ),
                requests=1,
            )
        )
    return lines_aggregate(raw)


def _generations(data: bytes | str) -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    for n, doc in enumerate(json_documents(data, WHAT_JSON)):
        items = doc if isinstance(doc, list) else [doc]
        for i, item in enumerate(items):
            where = f"{WHAT_JSON}: document {n + 1}, item {i + 1}"
            item = as_object(item, where)
            if "data" in item:
                where += ", data"
                item = as_object(item["data"], where)
            found.append((where, item))
            if len(found) > MAX_ROWS:
                raise BillFormatError(f"{WHAT_JSON}: more than {MAX_ROWS:,} generations")
    return found


def parse_generations(data: bytes | str) -> list[BillLine]:
    raw = []
    ids = _Ids(WHAT_JSON)
    for where, gen in _generations(data):
        ids.add(as_text(gen.get("id"), f"{where}.id"), where)
        model = as_text(gen.get("model"), f"{where}.model")
        if not model:
            raise BillFormatError(f"{where}.model: missing")
        if gen.get("total_cost") is None:
            raise BillFormatError(f"{where}.total_cost: missing")
        raw.append(
            RawLine(
                day=moment_from_iso(gen.get("created_at"), f"{where}.created_at").date(),
                model=model[:200],
                usd=decimal_read(gen["total_cost"], f"{where}.total_cost"),
                input_tokens=count_read(gen.get("tokens_prompt"), f"{where}.tokens_prompt"),
                output_tokens=count_read(
                    gen.get("tokens_completion"), f"{where}.tokens_completion"
                ),
                requests=1,
            )
        )
    return lines_aggregate(raw)
