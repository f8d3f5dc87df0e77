"""The one table of bill formats: each UpstreamBill.Source and the parser that reads it."""

from __future__ import annotations

from collections.abc import Callable

from relay.models import UpstreamBill
from relay.upstream_bills import anthropic, openai, openrouter
from relay.upstream_bills.lines import BillLine

Parser = Callable[[bytes | str], list[BillLine]]

PARSERS: dict[str, Parser] = {
    UpstreamBill.Source.OPENAI_COSTS_CSV: openai.parse_costs_csv,
    UpstreamBill.Source.OPENAI_COSTS_JSON: openai.parse_costs_json,
    UpstreamBill.Source.ANTHROPIC_COST_CSV: anthropic.parse_cost_csv,
    UpstreamBill.Source.ANTHROPIC_COST_REPORT: anthropic.parse_cost_report,
    UpstreamBill.Source.OPENROUTER_ACTIVITY_CSV: openrouter.parse_activity_csv,
    UpstreamBill.Source.OPENROUTER_GENERATIONS: openrouter.parse_generations,
}
