"""Anthropic's cost exports, as bill lines.

Supported:

- The Claude Console's Cost page CSV export: columns `usage_date_utc, model, workspace,
  api_key, usage_type, context_window, token_type, cost_usd, list_price_usd, cost_type,
  inference_geo, speed, api_key_id, api_key_status`, one row per day, model, key, token
  type and context window. Required: `usage_date_utc` (YYYY-MM-DD) and `cost_usd` (USD,
  after discounts; `list_price_usd` is the undiscounted price and is not used). `model` is
  a display name ("Claude Sonnet 4.5"), turned into the API id ("claude-sonnet-4-5"); rows
  without one are charges not attributed to a model.
- The Admin API cost report, `GET /v1/organizations/cost_report?bucket_width=1d&group_by[]=
  description`: one page `{"data": [{"starting_at", "ending_at", "results": [{"amount",
  "currency", "model", "description", "cost_type", "token_type", "service_tier",
  "context_window", "workspace_id", ...}]}], "has_more", "next_page"}`, a JSON list of
  pages, or one page a line. `amount` is a decimal string in CENTS ("123.45" is
  $1.2345); `model` is null for non-token costs (web search, code execution) and when the
  report is not grouped by description.

Where the shapes come from: the Admin API reference for the cost report
(platform.claude.com/docs/en/api/admin/cost_report: amount in lowest currency units as a
decimal string, currency always "USD", model null when not grouping by description), the
Console help article "Cost and usage reporting" (CSV export of the Cost page), and the
column order of a Console export reproduced in axigatelabs/axigate-finops.

The usage report (`/v1/organizations/usage_report/messages`) and the Usage page's CSV carry
tokens but no cost; they are not bills and are not read here.
"""

from __future__ import annotations

from decimal import Decimal

from relay.upstream_bills.lines import (
    BillFormatError,
    BillLine,
    RawLine,
    decimal_read,
    lines_aggregate,
)
from relay.upstream_bills.model_names import model_from_display_name
from relay.upstream_bills.reading import (
    MAX_ROWS,
    as_list,
    as_object,
    as_text,
    bucket_day,
    csv_rows,
    moment_from_iso,
    page_buckets,
)

WHAT_CSV = "Anthropic Console cost CSV"
WHAT_JSON = "Anthropic cost report JSON"
CENTS = Decimal(100)


def parse_cost_csv(data: bytes | str) -> list[BillLine]:
    raw = []
    for row in csv_rows(data, what=WHAT_CSV, required=("usage_date_utc", "cost_usd")):
        day = moment_from_iso(row.get("usage_date_utc"), row.where("usage_date_utc")).date()
        raw.append(
            RawLine(
                day=day,
                model=model_from_display_name(row.get("model"))[:200],
                usd=decimal_read(row.get("cost_usd"), row.where("cost_usd")),
            )
        )
    return lines_aggregate(raw)


def parse_cost_report(data: bytes | str) -> list[BillLine]:
    raw = []
    for where, bucket in page_buckets(data, WHAT_JSON):
        start = moment_from_iso(bucket.get("starting_at"), f"{where}.starting_at")
        end = None
        if bucket.get("ending_at") is not None:
            end = moment_from_iso(bucket.get("ending_at"), f"{where}.ending_at")
        day = bucket_day(start, end, where)
        for r, result in enumerate(as_list(bucket.get("results", []), f"{where}.results")):
            at = f"{where}.results[{r}]"
            result = as_object(result, at)
            currency = as_text(result.get("currency"), f"{at}.currency")
            if currency and currency.upper() != "USD":
                raise BillFormatError(f"{at}: currency {currency[:10]!r}; only USD is read")
            cents = decimal_read(result.get("amount"), f"{at}.amount")
            raw.append(
                RawLine(
                    day=day,
                    model=as_text(result.get("model"), f"{at}.model").lower()[:200],
                    usd=cents / CENTS,
                )
            )
            if len(raw) > MAX_ROWS:
                raise BillFormatError(f"{WHAT_JSON}: more than {MAX_ROWS:,} results")
    return lines_aggregate(raw)
