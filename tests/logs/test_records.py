"""The typed request record and the request log table stay one and the same."""

from __future__ import annotations

import datetime as dt

import pytest

from billing.pg_functions import DERIVED_COLUMNS, LOG_COLUMNS
from logs.models import RequestLog
from logs.records import FIELDS, RequestRecord

pytestmark = pytest.mark.embedded


def test_the_record_has_every_column_of_the_request_log_but_those_settlement_fills() -> None:
    columns = {f.name for f in RequestLog._meta.concrete_fields} - {"id"}
    assert set(DERIVED_COLUMNS) == {"request_id", "cost", "plan_cost", "subscription_id", "hold"}
    assert set(FIELDS) == columns - set(DERIVED_COLUMNS)
    assert set(LOG_COLUMNS) == columns  # what the batch statement writes


def test_a_record_survives_the_journal_and_refuses_what_is_not_one() -> None:
    record = RequestRecord(
        dt.datetime(2026, 12, 3, 14, 5, tzinfo=dt.UTC), 7, 9, "messages", model="m",
        completion_tokens=42,
    )  # fmt: skip
    assert RequestRecord.from_json({**record.json(), "unknown": 1}) == record
    with pytest.raises(TypeError):
        RequestRecord.from_json({"model": "m"})
    with pytest.raises(TypeError):
        RequestRecord.from_json({"organization_id": "7", "api_key_id": None, "endpoint": "x"})
