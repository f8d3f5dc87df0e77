"""OpenAI's cost exports, as bill lines.

Supported, both in USD (`amount.value`), in daily buckets:

- The Costs API, `GET /v1/organization/costs?bucket_width=1d&group_by=line_item`: one page
  `{"object": "page", "data": [bucket...], "has_more", "next_page"}`, a JSON list of such
  pages, or one page a line (JSON Lines). A bucket is `{"start_time", "end_time" (Unix
  seconds), "results": [{"object": "organization.costs.result", "amount": {"value",
  "currency"}, "line_item", "project_id"}]}`.
- The usage dashboard's cost CSV export, with the same fields flattened: columns
  `start_time, end_time, start_time_iso, end_time_iso, amount_value, amount_currency,
  line_item, project_id, organization_id, organization_name`. Required: `amount_value` and
  `start_time` or `start_time_iso`. Days without spend are exported with an empty
  `amount_value`; such rows are skipped.

`line_item` is a billing label, "<model>, <kind>" ("gpt-4o-2024-08-06, input",
"ft-gpt-4o-2024-08-06, output"); the part before the last comma is the model. Other labels
("assistants api | file search", "evals | gpt-4o-mini-2024-07-18") keep their prefix, so
they show as charges TokenHub has nothing recorded for. An empty line item (an export not grouped by
line item) is a charge for the whole day, matched against every model of that day.

Where the shapes come from: the Costs API reference (fields of `organization.costs.result`,
`bucket_width` 1d only), OpenAI's cookbook "completions_usage_api" notebook (line item
values such as "ft-gpt-4o-2024-08-06, input" and "assistants api | file search"), and a
dashboard export reproduced in xavierjflanagan/Guardian (the CSV header above, empty rows
for idle days, amounts such as "0.8958740000000000").
"""

from __future__ import annotations

from relay.upstream_bills.lines import (
    BillFormatError,
    BillLine,
    RawLine,
    decimal_read,
    lines_aggregate,
)
from relay.upstream_bills.reading import (
    MAX_ROWS,
    as_list,
    as_object,
    as_text,
    bucket_day,
    csv_rows,
    moment_from_iso,
    moment_from_unix,
    page_buckets,
)

WHAT_CSV = "OpenAI cost CSV"
WHAT_JSON = "OpenAI Costs API JSON"


def model_from_line_item(line_item: str) -> str:
    """'gpt-4o-2024-08-06, input' -> 'gpt-4o-2024-08-06'; a label without a kind is kept
    whole."""
    head, sep, kind = line_item.rpartition(",")
    if sep and head.strip() and kind.strip():
        return head.strip()
    return line_item.strip()


def _currency_check(currency: str, where: str) -> None:
    if currency and currency.lower() != "usd":
        raise BillFormatError(f"{where}: currency {currency[:10]!r}; only USD bills are read")


def parse_costs_csv(data: bytes | str) -> list[BillLine]:
    raw = []
    for row in csv_rows(data, what=WHAT_CSV, required=("amount_value",)):
        amount = row.get("amount_value")
        if not amount:
            continue  # a day without spend
        if row.get("start_time"):
            start = moment_from_unix(row.get("start_time"), row.where("start_time"))
        elif row.get("start_time_iso"):
            start = moment_from_iso(row.get("start_time_iso"), row.where("start_time_iso"))
        else:
            raise BillFormatError(f"{WHAT_CSV}: line {row.line}: no start_time or start_time_iso")
        end = None
        if row.get("end_time"):
            end = moment_from_unix(row.get("end_time"), row.where("end_time"))
        _currency_check(row.get("amount_currency"), row.where("amount_currency"))
        raw.append(
            RawLine(
                day=bucket_day(start, end, row.where("start_time")),
                model=model_from_line_item(row.get("line_item"))[:200],
                usd=decimal_read(amount, row.where("amount_value")),
            )
        )
    return lines_aggregate(raw)


def parse_costs_json(data: bytes | str) -> list[BillLine]:
    raw = []
    for where, bucket in page_buckets(data, WHAT_JSON):
        start = moment_from_unix(bucket.get("start_time"), f"{where}.start_time")
        end = None
        if bucket.get("end_time") is not None:
            end = moment_from_unix(bucket.get("end_time"), f"{where}.end_time")
        day = bucket_day(start, end, where)
        results = as_list(bucket.get("results", []), f"{where}.results")
        for r, result in enumerate(results):
            at = f"{where}.results[{r}]"
            result = as_object(result, at)
            if result.get("amount") is None:
                continue
            amount = as_object(result["amount"], f"{at}.amount")
            _currency_check(as_text(amount.get("currency"), f"{at}.amount.currency"), at)
            raw.append(
                RawLine(
                    day=day,
                    model=model_from_line_item(as_text(result.get("line_item"), at))[:200],
                    usd=decimal_read(amount.get("value"), f"{at}.amount.value"),
                )
            )
            if len(raw) > MAX_ROWS:
                raise BillFormatError(f"{WHAT_JSON}: more than {MAX_ROWS:,} results")
    return lines_aggregate(raw)
