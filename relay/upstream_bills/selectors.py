"""The drift between an imported upstream bill and the upstream cost TokenHub recorded for
the same channel, per UTC day and model.

What was recorded comes from `DailyUsage` for rolled-up days (`RolledUpDay`) and from
`RequestLog` for the others, never both for one day (as logs/usage.py reads usage). Request
logs carry the upstream model the channel was asked for; daily usage keeps the customer's
model name, which is mapped through the channel's current model map. Names are matched
as model_names describes. A bill line without a model is compared with the whole day when
the bill has nothing else for that day (an export not broken down by model); otherwise it
is a charge no recorded request explains (web search, file storage).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from django.db.models import Count, Sum
from django.db.models.functions import TruncDate

from logs.models import DailyUsage, RequestLog, RolledUpDay
from relay.models import Channel, UpstreamBill, UpstreamBillLine
from relay.upstream_bills.model_names import model_key

# A difference below one cent is never flagged: it is rounding (each request's cost is
# rounded to the micro-dollar; providers round their own way), not drift.
DRIFT_FLOOR = 10_000


@dataclass
class Recorded:
    cost: int = 0
    requests: int = 0


@dataclass(frozen=True)
class DriftRow:
    day: dt.date
    model: str  # the bill's name(s) for the model, else the recorded one(s); "" unattributed
    upstream_billed: int | None  # micro-USD; None: not on the bill
    recorded: int | None  # micro-USD; None: nothing recorded
    drift: int  # billed minus recorded: positive when the upstream billed more
    drift_percent: Decimal | None  # of the billed amount (of the recorded one if none billed)
    flagged: bool
    recorded_models: tuple[str, ...] = ()  # the recorded names matched, when they differ
    upstream_requests: int | None = None
    recorded_requests: int | None = None


@dataclass(frozen=True)
class BillDrift:
    bill: UpstreamBill
    rows: list[DriftRow] = field(default_factory=list)
    upstream_billed: int = 0
    recorded: int = 0
    drift: int = 0
    drift_percent: Decimal | None = None
    flagged: bool = False  # the period's totals are beyond the tolerance

    @property
    def flagged_rows(self) -> int:
        return sum(1 for r in self.rows if r.flagged)


def _percent_and_flag(
    billed: int, recorded: int, tolerance: Decimal
) -> tuple[int, Decimal | None, bool]:
    drift = billed - recorded
    reference = abs(billed) or abs(recorded)
    if not reference:
        return drift, None, False
    percent = (Decimal(drift * 100) / reference).quantize(Decimal("0.01"), ROUND_HALF_UP)
    flagged = abs(drift) > DRIFT_FLOOR and abs(drift) * 100 > tolerance * reference
    return drift, percent, flagged


def recorded_costs(
    *, channel: Channel, start: dt.date, end: dt.date
) -> dict[tuple[dt.date, str], Recorded]:
    """The upstream cost recorded for CHANNEL per UTC day and upstream model name."""
    rolled = list(
        RolledUpDay.objects.filter(day__gte=start, day__lte=end).values_list("day", flat=True)
    )
    model_map = channel.model_map if isinstance(channel.model_map, dict) else {}
    out: dict[tuple[dt.date, str], Recorded] = defaultdict(Recorded)

    def upstream_name(model: str) -> str:
        mapped = model_map.get(model, model)
        return mapped if isinstance(mapped, str) else model

    if rolled:
        daily = (
            DailyUsage.objects.filter(channel_id=channel.pk, day__in=rolled)
            .values("day", "model")
            .annotate(cost=Sum("upstream_cost"), n=Sum("requests"))
            .order_by()
        )
        for row in daily:
            got = out[(row["day"], upstream_name(row["model"]))]
            got.cost += row["cost"] or 0
            got.requests += row["n"] or 0
    since = dt.datetime.combine(start, dt.time.min, tzinfo=dt.UTC)
    until = dt.datetime.combine(end + dt.timedelta(days=1), dt.time.min, tzinfo=dt.UTC)
    live = (
        RequestLog.objects.filter(
            channel_id=channel.pk, created_at__gte=since, created_at__lt=until
        )
        .annotate(d=TruncDate("created_at", tzinfo=dt.UTC))
        .values("d", "upstream_model", "model")
        .annotate(cost=Sum("upstream_cost"), n=Count("id"))
        .order_by()
    )
    rolled_set = set(rolled)
    for row in live:
        if row["d"] in rolled_set:
            continue
        got = out[(row["d"], row["upstream_model"] or upstream_name(row["model"]))]
        got.cost += row["cost"] or 0
        got.requests += row["n"]
    return dict(out)


def _row(
    day: dt.date,
    model: str,
    lines: list[UpstreamBillLine],
    recs: list[Recorded],
    tolerance: Decimal,
    recorded_models: tuple[str, ...] = (),
) -> DriftRow:
    billed = sum(ln.cost for ln in lines) if lines else None
    recorded = sum(r.cost for r in recs) if recs else None
    drift, percent, flagged = _percent_and_flag(billed or 0, recorded or 0, tolerance)
    counts = [ln.requests for ln in lines if ln.requests is not None]
    return DriftRow(
        day=day,
        model=model,
        upstream_billed=billed,
        recorded=recorded,
        drift=drift,
        drift_percent=percent,
        flagged=flagged,
        recorded_models=recorded_models,
        upstream_requests=sum(counts) if counts else None,
        recorded_requests=sum(r.requests for r in recs) if recs else None,
    )


def _day_rows(
    day: dt.date,
    bills: dict[str, UpstreamBillLine],
    recs: dict[str, Recorded],
    tolerance: Decimal,
) -> list[DriftRow]:
    if set(bills) == {""}:  # not broken down by model: the whole day at once
        names = tuple(sorted(recs))
        return [_row(day, "", [bills[""]], list(recs.values()), tolerance, names)]
    rows = []
    unattributed = bills.pop("", None)
    for name in sorted(set(bills) & set(recs)):  # exact names first
        rows.append(_row(day, name, [bills.pop(name)], [recs.pop(name)], tolerance))
    by_key_bill: dict[str, list[str]] = defaultdict(list)
    by_key_rec: dict[str, list[str]] = defaultdict(list)
    for name in sorted(bills):
        by_key_bill[model_key(name)].append(name)
    for name in sorted(recs):
        by_key_rec[model_key(name)].append(name)
    for key in sorted(set(by_key_bill) | set(by_key_rec)):
        bnames, rnames = by_key_bill.get(key, []), by_key_rec.get(key, [])
        rows.append(
            _row(
                day,
                ", ".join(bnames or rnames),
                [bills[n] for n in bnames],
                [recs[n] for n in rnames],
                tolerance,
                tuple(rnames) if bnames else (),
            )
        )
    if unattributed is not None:
        rows.append(_row(day, "", [unattributed], [], tolerance))
    return sorted(rows, key=lambda r: (r.model == "", r.model))


def bill_drift(*, bill: UpstreamBill) -> BillDrift:
    """Every day and model of the bill's period that is on the bill or was recorded for its
    channel (either side alone included), with the drift and whether it is beyond the
    bill's tolerance; and the period's totals."""
    tolerance = bill.tolerance_percent
    recorded = recorded_costs(channel=bill.channel, start=bill.period_start, end=bill.period_end)
    bill_days: dict[dt.date, dict[str, UpstreamBillLine]] = defaultdict(dict)
    for line in bill.lines.all():
        bill_days[line.day][line.model] = line
    rec_days: dict[dt.date, dict[str, Recorded]] = defaultdict(dict)
    for (day, name), rec in recorded.items():
        rec_days[day][name] = rec
    rows: list[DriftRow] = []
    for day in sorted(set(bill_days) | set(rec_days)):
        rows.extend(_day_rows(day, dict(bill_days[day]), dict(rec_days[day]), tolerance))
    billed_total = sum(r.upstream_billed or 0 for r in rows)
    recorded_total = sum(r.recorded or 0 for r in rows)
    drift, percent, flagged = _percent_and_flag(billed_total, recorded_total, tolerance)
    return BillDrift(
        bill=bill,
        rows=rows,
        upstream_billed=billed_total,
        recorded=recorded_total,
        drift=drift,
        drift_percent=percent,
        flagged=flagged,
    )
