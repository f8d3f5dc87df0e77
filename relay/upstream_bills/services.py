"""Importing an upstream's bill: the file is read by its format's parser (formats.PARSERS),
then its lines are stored for the channel and period."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from relay.models import Channel, UpstreamBill, UpstreamBillLine
from relay.upstream_bills.formats import PARSERS
from relay.upstream_bills.lines import BillFormatError

MAX_PERIOD_DAYS = 366


class InvalidBill(ValueError):
    """The file or the import's details are wrong; the message is for the operator."""


def _tolerance_check(value: Decimal) -> Decimal:
    try:
        tolerance = Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        raise InvalidBill("The tolerance must be a percentage.") from None
    if not tolerance.is_finite() or not 0 <= tolerance <= 100:
        raise InvalidBill("The tolerance must be between 0 and 100 percent.")
    if tolerance != tolerance.quantize(Decimal("0.01")):
        raise InvalidBill("The tolerance has at most two decimals.")
    return tolerance


def upstream_bill_import(
    *,
    channel_id: int,
    source: str,
    data: bytes | str,
    period_start: dt.date,
    period_end: dt.date,
    tolerance_percent: Decimal,
    user: User | None,
    filename: str = "",
) -> UpstreamBill:
    """Read DATA as a SOURCE export and store what it billed per day and model for the
    channel and the period (UTC days, both inclusive).

    Atomic: the bill and all its lines are written, or nothing is. Importing the same
    channel and period again REPLACES the earlier import, its lines and details, in one
    transaction (the channel row is locked, so two imports of one channel take turns):
    the newest file the operator has is the one compared. Lines outside the period are
    not stored; their number and total are kept on the bill. Raises InvalidBill with a
    message naming the line or field when the file is not a valid export of SOURCE.
    """
    if period_start > period_end:
        raise InvalidBill("The period must start on or before its last day.")
    if (period_end - period_start).days >= MAX_PERIOD_DAYS:
        raise InvalidBill(f"A period covers at most {MAX_PERIOD_DAYS} days.")
    tolerance = _tolerance_check(tolerance_percent)
    parser = PARSERS.get(source)
    if parser is None:
        raise InvalidBill("Unknown bill format.")
    try:
        lines = parser(data)
    except BillFormatError as exc:
        raise InvalidBill(str(exc)) from None
    if not lines:
        raise InvalidBill("The file holds no cost lines.")
    kept = [ln for ln in lines if period_start <= ln.day <= period_end]
    skipped = [ln for ln in lines if not period_start <= ln.day <= period_end]
    if not kept:
        raise InvalidBill(
            f"None of the file's lines fall between {period_start} and {period_end}; "
            f"the file covers {lines[0].day} to {max(ln.day for ln in lines)}."
        )

    with transaction.atomic():
        channel = Channel.objects.select_for_update().filter(pk=channel_id).first()
        if channel is None:
            raise InvalidBill("Unknown channel.")
        bill = UpstreamBill.objects.filter(
            channel=channel, period_start=period_start, period_end=period_end
        ).first() or UpstreamBill(channel=channel, period_start=period_start, period_end=period_end)
        if bill.pk is not None:
            bill.lines.all().delete()
        bill.source = source
        bill.tolerance_percent = tolerance
        bill.filename = filename[:255]
        bill.imported_by = user
        bill.imported_at = timezone.now()
        bill.total_cost = sum(ln.cost for ln in kept)
        bill.line_count = len(kept)
        bill.skipped_cost = sum(ln.cost for ln in skipped)
        bill.skipped_lines = len(skipped)
        bill.save()
        UpstreamBillLine.objects.bulk_create(
            [
                UpstreamBillLine(
                    bill=bill,
                    day=ln.day,
                    model=ln.model,
                    cost=ln.cost,
                    input_tokens=ln.input_tokens,
                    output_tokens=ln.output_tokens,
                    requests=ln.requests,
                )
                for ln in kept
            ],
            batch_size=1000,
        )
    return bill
