"""Reconciliation against upstream bills: the providers' real export formats read exactly,
the drift per day and model against recorded upstream cost (request logs and rolled-up
days), tolerance flagging, re-imports, the admin import, and parsers that never fail with
anything but a clear error on hostile files."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.models import User
from accounts.services import user_create
from logs.models import DailyUsage, RequestLog, RolledUpDay
from money import round_micros
from relay.models import Channel, UpstreamBill, UpstreamBillLine
from relay.services import channel_create
from relay.upstream_bills import anthropic, openai, openrouter
from relay.upstream_bills.formats import PARSERS
from relay.upstream_bills.lines import BillFormatError, BillLine
from relay.upstream_bills.model_names import model_from_display_name, model_key
from relay.upstream_bills.selectors import BillDrift, bill_drift
from relay.upstream_bills.services import InvalidBill, upstream_bill_import

FILES = Path(__file__).parents[1] / "fakes" / "upstream_bills"
NOV = [dt.date(2026, 11, d) for d in range(1, 5)]  # the fixtures' period: Nov 1-4, 2026
Source = UpstreamBill.Source


def _read(name: str) -> bytes:
    return (FILES / name).read_bytes()


def _line(day: int, model: str, cost: int, **counts: int) -> BillLine:
    return BillLine(day=dt.date(2026, 11, day), model=model, cost=cost, **counts)


# --- The formats -----------------------------------------------------------------------------

OPENAI_LINES = [
    BillLine(day=dt.date(2026, 10, 31), model="gpt-4o-2024-08-06", cost=100_000),
    _line(1, "gpt-4o-2024-08-06", 1_500_000),
    _line(1, "gpt-4o-mini-2024-07-18", 200_000),
    _line(2, "assistants api | file search", 271),
    # 0.4499995 + 0.7500005: summed exactly before rounding, not 0.450000 + 0.750001.
    _line(2, "gpt-4o-2024-08-06", 1_200_000),
    _line(2, "gpt-4o-mini-2024-07-18", 101_000),
    _line(3, "gpt-4o-2024-08-06", 250_000),
]


def test_it_reads_the_openai_dashboard_cost_csv() -> None:
    """BOM, CRLF, quoted line items, input and output of a model summed, idle days skipped."""
    assert openai.parse_costs_csv(_read("openai_costs.csv")) == OPENAI_LINES


def test_it_reads_the_openai_costs_api_pages_as_the_csv() -> None:
    assert openai.parse_costs_json(_read("openai_costs.jsonl")) == OPENAI_LINES


def test_it_reads_openai_costs_api_pages_given_as_one_json_list() -> None:
    pages = [json.loads(ln) for ln in _read("openai_costs.jsonl").splitlines()]

    assert openai.parse_costs_json(json.dumps(pages)) == OPENAI_LINES


def test_it_reads_an_openai_export_not_grouped_by_line_item_as_whole_days() -> None:
    assert openai.parse_costs_csv(_read("openai_costs_ungrouped.csv")) == [
        _line(1, "", 1_700_000),
        _line(2, "", 1_300_900),
    ]


def test_it_reads_the_anthropic_console_cost_csv_with_display_names_as_ids() -> None:
    assert anthropic.parse_cost_csv(_read("anthropic_costs.csv")) == [
        _line(1, "claude-haiku-4-5", 100_000),
        _line(1, "claude-sonnet-4-5", 3_000_000),
        _line(2, "", 50_000),  # web search: no model
        _line(2, "claude-sonnet-4-5", 1_500_000),
        _line(3, "claude-haiku-4-5", 250_000),
    ]


def test_it_reads_the_anthropic_cost_report_amounts_as_cents() -> None:
    assert anthropic.parse_cost_report(_read("anthropic_cost_report.json")) == [
        _line(1, "claude-haiku-4-5-20251001", 100_000),
        _line(1, "claude-sonnet-4-5-20250929", 3_000_000),
        _line(2, "", 50_000),
        _line(2, "claude-sonnet-4-5-20250929", 1_500_000),
        _line(3, "claude-haiku-4-5-20251001", 250_000),
    ]


OPENROUTER_LINES = [
    _line(1, "openai/gpt-4o-2024-08-06", 20_000, input_tokens=2200, output_tokens=1450, requests=2),
    _line(
        2,
        "meta-llama/llama-3.3-70b-instruct",
        2_120,
        input_tokens=3100,
        output_tokens=420,
        requests=1,
    ),
]


def test_it_sums_openrouter_activity_generations_per_utc_day_and_model() -> None:
    assert openrouter.parse_activity_csv(_read("openrouter_activity.csv")) == OPENROUTER_LINES


def test_it_sums_openrouter_generation_responses_as_the_activity_export() -> None:
    assert openrouter.parse_generations(_read("openrouter_generations.jsonl")) == OPENROUTER_LINES


def test_it_refuses_a_generation_listed_twice() -> None:
    text = _read("openrouter_generations.jsonl").decode()
    first = text.splitlines()[0]

    with pytest.raises(BillFormatError, match="appears twice"):
        openrouter.parse_generations(text + first + "\n")


@pytest.mark.parametrize(
    ("parser", "data", "message"),
    [
        (
            openai.parse_costs_csv,
            "start_time,amount_value\n1793491200,abc\n",
            "line 2, amount_value",
        ),
        (openai.parse_costs_csv, "foo,bar\n1,2\n", "missing the column"),
        (
            openai.parse_costs_csv,
            "start_time,end_time,amount_value\n1793491200,1793494800,1\n",
            "not one whole UTC day",
        ),
        (
            openai.parse_costs_csv,
            "start_time,amount_value,amount_currency\n1793491200,1,eur\n",
            "only USD",
        ),
        (openai.parse_costs_json, '{"object": "page", "data": [{"start_time": "x"}]}', "data[0]"),
        (openai.parse_costs_json, '{"data": [', "not JSON"),
        (anthropic.parse_cost_csv, "usage_date_utc,cost_usd\nAugust,0.10\n", "usage_date_utc"),
        (
            anthropic.parse_cost_report,
            '{"data": [{"starting_at": "2026-11-01T00:00:00Z", "results": [{"amount": "NaN"}]}]}',
            "results[0].amount",
        ),
        (openrouter.parse_activity_csv, b"\xff\xfe", "not UTF-8"),
        (
            openrouter.parse_generations,
            '{"data": {"model": "m", "created_at": "2026-11-01"}}',
            "total_cost: missing",
        ),
        (
            openrouter.parse_generations,
            '{"data": {"model": "m", "created_at": "2026-11-01", "total_cost": Infinity}}',
            "not a number",
        ),
    ],
)
def test_it_names_the_line_or_field_of_a_malformed_file(
    parser: Callable[[bytes | str], list[BillLine]], data: bytes | str, message: str
) -> None:
    with pytest.raises(BillFormatError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parser(data)


def test_it_refuses_files_over_the_size_cap() -> None:
    big = "usage_date_utc,cost_usd\n" + "2026-11-01,0.01\n" * 1_400_000

    with pytest.raises(BillFormatError, match="larger than 20 MB"):
        anthropic.parse_cost_csv(big)


@pytest.mark.parametrize(
    ("billed", "recorded"),
    [
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("claude-sonnet-4-20250514", "claude-sonnet-4"),
        ("claude-3-5-sonnet@20240620", "claude-3-5-sonnet"),
        ("gpt-4-0613", "gpt-4"),
        ("openai/gpt-4o-2024-08-06", "openai/gpt-4o"),
        ("deepseek/deepseek-v4.1-flash-20260910", "deepseek/deepseek-v4.1-flash"),
    ],
)
def test_a_dated_snapshot_shares_its_alias_key(billed: str, recorded: str) -> None:
    assert model_key(billed) == model_key(recorded)


@pytest.mark.parametrize(
    ("one", "other"),
    [("gpt-4o", "gpt-4o-mini"), ("gpt-4-1106-preview", "gpt-4"), ("o1-2024", "o1")],
)
def test_different_models_keep_different_keys(one: str, other: str) -> None:
    assert model_key(one) != model_key(other)


def test_console_display_names_become_api_ids() -> None:
    assert [model_from_display_name(n) for n in ("Claude Haiku 4.5", "Claude 3.5 Sonnet")] == [
        "claude-haiku-4-5",
        "claude-3-5-sonnet",
    ]


# --- Hostile files ---------------------------------------------------------------------------

ALL_PARSERS = list(PARSERS.items())
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _only_a_clear_error_or_lines(
    parser: Callable[[bytes | str], list[BillLine]], data: Any
) -> None:
    try:
        lines = parser(data)
    except BillFormatError:
        return
    for line in lines:
        assert 2000 <= line.day.year <= 2200
        assert abs(line.cost) <= 10**15


@pytest.mark.parametrize(("source", "parser"), ALL_PARSERS, ids=[s for s, _ in ALL_PARSERS])
@FUZZ
@given(data=st.binary(max_size=400))
def test_random_bytes_never_crash_a_parser(source: str, parser: Any, data: bytes) -> None:
    _only_a_clear_error_or_lines(parser, data)


@pytest.mark.parametrize(("source", "parser"), ALL_PARSERS, ids=[s for s, _ in ALL_PARSERS])
@FUZZ
@given(text=st.text(max_size=400))
def test_random_text_never_crashes_a_parser(source: str, parser: Any, text: str) -> None:
    _only_a_clear_error_or_lines(parser, text)


CSV_HEADERS: dict[str, str] = {
    Source.OPENAI_COSTS_CSV: "start_time,end_time,start_time_iso,end_time_iso,amount_value,"
    "amount_currency,line_item,project_id,organization_id,organization_name",
    Source.ANTHROPIC_COST_CSV: "usage_date_utc,model,workspace,api_key,usage_type,context_window,"
    "token_type,cost_usd,list_price_usd,cost_type,inference_geo,speed,api_key_id,api_key_status",
    Source.OPENROUTER_ACTIVITY_CSV: "generation_id,created_at,cost_total,cost_web_search,"
    "cost_cache,cost_file_processing,byok_usage_inference,tokens_prompt,tokens_completion,"
    "tokens_reasoning,tokens_cached,model_permaslug,provider_name,variant,cancelled,streamed,"
    "user,finish_reason_raw,finish_reason_normalized,generation_time_ms,time_to_first_token_ms,"
    "api_key_disabled,api_key_name,app_name",
}
# Cells that are almost right, so that rows get past the first check and reach the others.
PLAUSIBLE = st.sampled_from(
    [
        "",
        "0",
        "0.25",
        "-1",
        "1e400",
        "NaN",
        "1793491200",
        "1793494800",
        "99999999999",
        "2026-11-01",
        "2026-11-01 23:59:59.999",
        "2026-11-01T00:00:00+14:00",
        "0001-01-01",
        "usd",
        "eur",
        "gpt-4o-2024-08-06, input",
        "Claude Sonnet 4.5",
        "gen-1",
        "10.0",
        "²",
    ]
)
CELLS = st.lists(st.one_of(PLAUSIBLE, st.text(max_size=12)), max_size=26)


@pytest.mark.parametrize("source", list(CSV_HEADERS))
@FUZZ
@given(rows=st.lists(CELLS, max_size=6), crlf=st.booleans(), bom=st.booleans())
def test_random_csv_rows_never_crash_a_parser(
    source: str, rows: list[list[str]], crlf: bool, bom: bool
) -> None:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n" if crlf else "\n").writerows(rows)
    text = ("\ufeff" if bom else "") + CSV_HEADERS[source] + "\n" + out.getvalue()
    _only_a_clear_error_or_lines(PARSERS[source], text.encode())


JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=False, allow_infinity=False),
    PLAUSIBLE,
    st.text(max_size=10),
)
JSON_ANY = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def _maybe(value: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(value, JSON_ANY)


OPENAI_PAGE = st.fixed_dictionaries(
    {
        "object": st.just("page"),
        "data": _maybe(
            st.lists(
                st.fixed_dictionaries(
                    {
                        "start_time": _maybe(st.sampled_from([1793491200, 1793491201])),
                        "end_time": _maybe(st.just(1793577600)),
                        "results": _maybe(
                            st.lists(
                                st.fixed_dictionaries(
                                    {
                                        "amount": _maybe(
                                            st.fixed_dictionaries(
                                                {
                                                    "value": JSON_SCALARS,
                                                    "currency": _maybe(st.just("usd")),
                                                }
                                            )
                                        ),
                                        "line_item": _maybe(st.just("gpt-4o, input")),
                                    }
                                ),
                                max_size=3,
                            )
                        ),
                    }
                ),
                max_size=3,
            )
        ),
    }
)
ANTHROPIC_PAGE = st.fixed_dictionaries(
    {
        "data": _maybe(
            st.lists(
                st.fixed_dictionaries(
                    {
                        "starting_at": _maybe(st.just("2026-11-01T00:00:00Z")),
                        "ending_at": _maybe(st.just("2026-11-02T00:00:00Z")),
                        "results": _maybe(
                            st.lists(
                                st.fixed_dictionaries(
                                    {
                                        "amount": JSON_SCALARS,
                                        "currency": _maybe(st.just("USD")),
                                        "model": _maybe(st.just("claude-sonnet-4-5")),
                                    }
                                ),
                                max_size=3,
                            )
                        ),
                    }
                ),
                max_size=3,
            )
        )
    }
)
GENERATION = st.fixed_dictionaries(
    {
        "data": _maybe(
            st.fixed_dictionaries(
                {
                    "id": _maybe(st.sampled_from(["gen-1", "gen-2"])),
                    "created_at": _maybe(st.just("2026-11-01T09:15:02.113+00:00")),
                    "model": _maybe(st.just("openai/gpt-4o")),
                    "total_cost": JSON_SCALARS,
                    "tokens_prompt": JSON_SCALARS,
                    "tokens_completion": JSON_SCALARS,
                }
            )
        )
    }
)
JSON_SHAPES: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    Source.OPENAI_COSTS_JSON: OPENAI_PAGE,
    Source.ANTHROPIC_COST_REPORT: ANTHROPIC_PAGE,
    Source.OPENROUTER_GENERATIONS: GENERATION,
}


@pytest.mark.parametrize("source", list(JSON_SHAPES))
@FUZZ
@given(data=st.data(), lines=st.booleans())
def test_random_json_in_the_real_shape_never_crashes_a_parser(
    source: str, data: st.DataObject, lines: bool
) -> None:
    docs = data.draw(st.lists(JSON_SHAPES[source], min_size=1, max_size=3))
    text = "\n".join(json.dumps(d) for d in docs) if lines else json.dumps(docs)
    _only_a_clear_error_or_lines(PARSERS[source], text)


AMOUNTS = st.decimals(min_value=0, max_value=1000, places=10, allow_nan=False)


@FUZZ
@given(
    rows=st.lists(
        st.tuples(st.sampled_from(NOV), st.sampled_from(["gpt-4o", "gpt-4o-mini"]), AMOUNTS),
        min_size=1,
        max_size=20,
    )
)
def test_line_totals_are_the_exact_sums_rounded_once(
    rows: list[tuple[dt.date, str, Decimal]],
) -> None:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["start_time", "amount_value", "amount_currency", "line_item"])
    exact: dict[tuple[dt.date, str], Decimal] = {}
    for day, model, amount in rows:
        start = int(dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC).timestamp())
        writer.writerow([start, str(amount), "usd", f"{model}, input"])
        exact[(day, model)] = exact.get((day, model), Decimal(0)) + amount

    lines = openai.parse_costs_csv(out.getvalue())

    assert {(ln.day, ln.model): ln.cost for ln in lines} == {
        key: round_micros(total * 1_000_000) for key, total in exact.items()
    }


def test_deeply_nested_json_is_a_clear_error() -> None:
    with pytest.raises(BillFormatError, match="nested too deeply"):
        openai.parse_costs_json("[" * 100_000 + "]" * 100_000)


# --- Import and drift ------------------------------------------------------------------------


def _channel(name: str, models: list[str], model_map: dict[str, str] | None = None) -> Channel:
    return channel_create(
        name=name,
        type="openai",
        base_url="https://api.example.com/v1",
        api_keys=["sk-upstream"],
        models=models,
        model_map=model_map,
    )


_seq = iter(range(10**6))


def _log(
    channel: Channel | None,
    day: dt.date,
    model: str,
    upstream_cost: int | None,
    upstream_model: str | None = None,
    hour: int = 12,
) -> RequestLog:
    return RequestLog.objects.create(
        request_id=f"req-{next(_seq)}",
        created_at=dt.datetime.combine(day, dt.time(hour), tzinfo=dt.UTC),
        organization_id=1,
        channel_id=channel.pk if channel else None,
        endpoint="chat",
        model=model,
        upstream_model=model if upstream_model is None else upstream_model,
        status_code=200,
        upstream_cost=upstream_cost,
    )


def _rolled(channel: Channel, day: dt.date, model: str, upstream_cost: int) -> None:
    RolledUpDay.objects.get_or_create(day=day)
    DailyUsage.objects.create(
        day=day,
        organization_id=1,
        channel_id=channel.pk,
        model=model,
        requests=3,
        upstream_cost=upstream_cost,
    )


@pytest.fixture
def gpt_channel(db: None) -> Channel:
    """Recorded: Nov 1 rolled up, Nov 2 and 4 in the request log, nothing on Nov 3."""
    channel = _channel("openai-direct", ["gpt-4o", "gpt-4o-mini"])
    other = _channel("other", ["gpt-4o"])
    _rolled(channel, NOV[0], "gpt-4o", 1_500_000)
    _rolled(channel, NOV[0], "gpt-4o-mini", 200_000)
    _log(channel, NOV[0], "gpt-4o", 999_999)  # already in the rollup: never counted twice
    _log(channel, NOV[1], "gpt-4o", 400_000, hour=0)
    _log(channel, NOV[1], "gpt-4o", 600_000, hour=23)
    _log(channel, NOV[1], "gpt-4o-mini", 100_000)
    _log(channel, NOV[1], "gpt-4o-mini", None)  # refused before any upstream
    _log(other, NOV[1], "gpt-4o", 5_000_000)  # another channel
    _log(channel, NOV[3], "gpt-4o", 300_000)
    _log(channel, NOV[3] + dt.timedelta(days=1), "gpt-4o", 7_000_000)  # after the period
    return channel


def _import(
    channel: Channel, source: str, name: str, tolerance: str = "2", **kw: Any
) -> UpstreamBill:
    return upstream_bill_import(
        channel_id=channel.pk,
        source=source,
        data=_read(name),
        period_start=kw.get("start", NOV[0]),
        period_end=kw.get("end", NOV[3]),
        tolerance_percent=Decimal(tolerance),
        user=kw.get("user"),
        filename=name,
    )


def _table(drift: BillDrift) -> list[tuple[Any, ...]]:
    return [
        (r.day.day, r.model, r.upstream_billed, r.recorded, r.drift, r.drift_percent, r.flagged)
        for r in drift.rows
    ]


def test_it_shows_the_drift_per_day_and_model_against_logs_and_rollups(
    gpt_channel: Channel,
) -> None:
    bill = _import(gpt_channel, Source.OPENAI_COSTS_CSV, "openai_costs.csv")

    drift = bill_drift(bill=bill)

    D = Decimal
    assert _table(drift) == [
        (1, "gpt-4o-2024-08-06", 1_500_000, 1_500_000, 0, D("0.00"), False),
        (1, "gpt-4o-mini-2024-07-18", 200_000, 200_000, 0, D("0.00"), False),
        (2, "assistants api | file search", 271, None, 271, D("100.00"), False),  # under 1 cent
        (2, "gpt-4o-2024-08-06", 1_200_000, 1_000_000, 200_000, D("16.67"), True),
        (2, "gpt-4o-mini-2024-07-18", 101_000, 100_000, 1_000, D("0.99"), False),
        (3, "gpt-4o-2024-08-06", 250_000, None, 250_000, D("100.00"), True),  # bill only
        (4, "gpt-4o", None, 300_000, -300_000, D("-100.00"), True),  # recorded only
    ]
    assert drift.rows[0].recorded_models == ("gpt-4o",)
    assert drift.rows[3].recorded_requests == 2
    assert (drift.upstream_billed, drift.recorded, drift.drift) == (3_251_271, 3_100_000, 151_271)
    assert (drift.drift_percent, drift.flagged, drift.flagged_rows) == (D("4.65"), True, 3)


def test_a_wider_tolerance_flags_fewer_days(gpt_channel: Channel) -> None:
    bill = _import(gpt_channel, Source.OPENAI_COSTS_CSV, "openai_costs.csv", tolerance="20")

    drift = bill_drift(bill=bill)

    flagged = [(r.day.day, r.model) for r in drift.rows if r.flagged]
    assert flagged == [(3, "gpt-4o-2024-08-06"), (4, "gpt-4o")]
    assert not drift.flagged


def test_an_export_by_day_only_is_compared_with_every_model_of_the_day(
    gpt_channel: Channel,
) -> None:
    bill = _import(gpt_channel, Source.OPENAI_COSTS_CSV, "openai_costs_ungrouped.csv")

    rows = bill_drift(bill=bill).rows

    assert [(r.day.day, r.model, r.upstream_billed, r.recorded, r.flagged) for r in rows] == [
        (1, "", 1_700_000, 1_700_000, False),
        (2, "", 1_300_900, 1_100_000, True),
        (4, "gpt-4o", None, 300_000, True),
    ]
    assert rows[1].recorded_models == ("gpt-4o", "gpt-4o-mini")


def test_it_keeps_lines_outside_the_period_out_of_the_comparison(gpt_channel: Channel) -> None:
    bill = _import(gpt_channel, Source.OPENAI_COSTS_CSV, "openai_costs.csv")

    assert (bill.line_count, bill.total_cost) == (6, 3_251_271)
    assert (bill.skipped_lines, bill.skipped_cost) == (1, 100_000)
    assert not bill.lines.filter(day__lt=NOV[0]).exists()


def test_reimporting_a_channel_and_period_replaces_the_earlier_import(
    gpt_channel: Channel, admin_user: User
) -> None:
    first = _import(gpt_channel, Source.OPENAI_COSTS_CSV, "openai_costs.csv")

    again = _import(
        gpt_channel, Source.OPENAI_COSTS_CSV, "openai_costs_ungrouped.csv", user=admin_user
    )

    assert again.pk == first.pk
    assert UpstreamBill.objects.count() == 1
    assert list(again.lines.values_list("day", "model", "cost").order_by("day")) == [
        (NOV[0], "", 1_700_000),
        (NOV[1], "", 1_300_900),
    ]
    assert (again.filename, again.imported_by, again.total_cost) == (
        "openai_costs_ungrouped.csv",
        admin_user,
        3_000_900,
    )


def test_another_period_is_a_separate_bill(gpt_channel: Channel) -> None:
    _import(gpt_channel, Source.OPENAI_COSTS_CSV, "openai_costs.csv")

    _import(gpt_channel, Source.OPENAI_COSTS_CSV, "openai_costs.csv", end=NOV[1])

    assert UpstreamBill.objects.filter(channel=gpt_channel).count() == 2


def test_a_bad_file_stores_nothing_and_keeps_the_earlier_import(gpt_channel: Channel) -> None:
    bill = _import(gpt_channel, Source.OPENAI_COSTS_CSV, "openai_costs.csv")

    with pytest.raises(InvalidBill, match="missing the column"):
        _import(gpt_channel, Source.OPENAI_COSTS_CSV, "anthropic_costs.csv")

    assert UpstreamBillLine.objects.filter(bill=bill).count() == 6


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"start": NOV[3], "end": NOV[0]}, "start on or before"),
        ({"start": dt.date(2026, 12, 1), "end": dt.date(2026, 12, 31)}, "None of the file's lines"),
        ({"start": dt.date(2025, 1, 1), "end": NOV[3]}, "at most 366 days"),
        ({"tolerance": "-1"}, "between 0 and 100"),
    ],
)
def test_it_refuses_an_import_that_cannot_be_compared(
    gpt_channel: Channel, kw: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidBill, match=message):
        _import(gpt_channel, Source.OPENAI_COSTS_CSV, "openai_costs.csv", **kw)

    assert not UpstreamBill.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("source", "name"),
    [
        (Source.ANTHROPIC_COST_CSV, "anthropic_costs.csv"),
        (Source.ANTHROPIC_COST_REPORT, "anthropic_cost_report.json"),
    ],
)
def test_anthropic_bills_match_the_recorded_model_exactly_or_without_the_date(
    source: str, name: str
) -> None:
    channel = _channel("claude", ["claude-sonnet-4-5", "claude-haiku-4-5"])
    _log(channel, NOV[0], "claude-sonnet-4-5", 3_000_000)
    _log(channel, NOV[0], "claude-haiku-4-5", 100_000)
    _log(channel, NOV[1], "claude-sonnet-4-5", 1_470_000)  # 2% under the bill: within it
    _log(channel, NOV[2], "claude-haiku-4-5", 250_000)

    rows = bill_drift(bill=_import(channel, source, name)).rows

    assert [(r.day.day, r.recorded, r.flagged) for r in rows] == [
        (1, 100_000, False),
        (1, 3_000_000, False),
        (2, 1_470_000, False),
        (2, None, True),  # web search: billed, no request explains it
        (3, 250_000, False),
    ]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("source", "name"),
    [
        (Source.OPENROUTER_ACTIVITY_CSV, "openrouter_activity.csv"),
        (Source.OPENROUTER_GENERATIONS, "openrouter_generations.jsonl"),
    ],
)
def test_openrouter_bills_match_rollups_through_the_channels_model_map(
    source: str, name: str
) -> None:
    channel = _channel(
        "openrouter",
        ["gpt-4o", "llama-3.3-70b"],
        {"gpt-4o": "openai/gpt-4o", "llama-3.3-70b": "meta-llama/llama-3.3-70b-instruct"},
    )
    _rolled(channel, NOV[0], "gpt-4o", 20_000)  # customer name, mapped to openai/gpt-4o
    _log(channel, NOV[1], "llama-3.3-70b", 2_000, "meta-llama/llama-3.3-70b-instruct")

    rows = bill_drift(bill=_import(channel, source, name)).rows

    assert [(r.model, r.recorded_models, r.upstream_billed, r.recorded) for r in rows] == [
        ("openai/gpt-4o-2024-08-06", ("openai/gpt-4o",), 20_000, 20_000),
        ("meta-llama/llama-3.3-70b-instruct", (), 2_120, 2_000),
    ]
    assert [(r.upstream_requests, r.recorded_requests) for r in rows] == [(2, 3), (1, 1)]


# --- The admin -------------------------------------------------------------------------------


def _form(channel: Channel, name: str, source: str = Source.OPENAI_COSTS_CSV) -> dict[str, Any]:
    return {
        "channel": channel.pk,
        "source": source,
        "period_start": "2026-11-01",
        "period_end": "2026-11-04",
        "tolerance_percent": "2",
        "file": SimpleUploadedFile(name, _read(name), content_type="text/csv"),
    }


def test_an_admin_imports_a_bill_and_sees_its_flagged_days(
    admin_client: Client, gpt_channel: Channel
) -> None:
    response = admin_client.post(
        reverse("admin:relay_upstreambill_add"), _form(gpt_channel, "openai_costs.csv")
    )

    bill = UpstreamBill.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:relay_upstreambill_change", args=[bill.pk])
    page = admin_client.get(response["Location"]).content.decode()
    assert page.count('<tr class="flagged">') == 4  # three rows and the total
    assert "Over tolerance: billed, not recorded" in page  # Nov 3
    assert "Over tolerance: recorded, not billed" in page  # Nov 4
    assert "Billed, not recorded" in page  # the file search fee, under a cent
    assert "3.251271" in page and "3.100000" in page and "16.67%" in page
    listing = admin_client.get(reverse("admin:relay_upstreambill_changelist")).content.decode()
    assert "openai-direct" in listing and "3.251271" in listing


def test_the_admin_import_form_shows_what_is_wrong_with_a_file(
    admin_client: Client, gpt_channel: Channel
) -> None:
    response = admin_client.post(
        reverse("admin:relay_upstreambill_add"),
        _form(gpt_channel, "openai_costs.jsonl", Source.ANTHROPIC_COST_REPORT),
    )

    assert response.status_code == 200
    assert "Anthropic cost report JSON: page 1: data[0].starting_at" in response.content.decode()
    assert not UpstreamBill.objects.exists()


def test_staff_without_the_permission_cannot_import(client: Client, gpt_channel: Channel) -> None:
    staff = user_create(email="staff@example.com", password="staff-pass-123")
    staff.is_staff = True
    staff.save()
    client.force_login(staff)

    response = client.post(
        reverse("admin:relay_upstreambill_add"), _form(gpt_channel, "openai_costs.csv")
    )

    assert response.status_code == 403
    assert not UpstreamBill.objects.exists()
