"""Reading untrusted export files: size and row caps, UTF-8 with or without a BOM, CSV with
CRLF and quoted fields, JSON documents or JSON Lines, dates. Every failure is a
BillFormatError naming the line or the field; nothing else escapes."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NoReturn

from relay.upstream_bills.lines import BillFormatError

MAX_BYTES = 20 * 1024 * 1024
MAX_ROWS = 200_000
# Dates outside this range are typos or garbage, not a bill.
MIN_YEAR, MAX_YEAR = 2000, 2200
ONE_DAY = dt.timedelta(days=1)


def text_decode(data: bytes | str, what: str) -> str:
    """The file as text: UTF-8, a leading BOM dropped, at most MAX_BYTES."""
    if len(data) > MAX_BYTES:
        raise BillFormatError(f"{what}: the file is larger than {MAX_BYTES // 2**20} MB")
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise BillFormatError(f"{what}: not UTF-8 text (byte {exc.start})") from None
    else:
        text = data.removeprefix("\ufeff")
    if "\x00" in text:
        raise BillFormatError(f"{what}: contains NUL characters, not a text export")
    return text


# --- CSV -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CsvRow:
    what: str  # the format's name, for messages
    line: int  # the file's line number (where the row ends, if a quoted field spans lines)
    cells: dict[str, str]

    def get(self, column: str) -> str:
        return self.cells.get(column, "").strip()

    def where(self, column: str) -> str:
        return f"{self.what}: line {self.line}, {column}"


def csv_rows(data: bytes | str, *, what: str, required: tuple[str, ...]) -> Iterator[CsvRow]:
    """The data rows of a CSV export keyed by lower-cased header; blank rows skipped.
    Tab-separated text (a spreadsheet copy) is read too."""
    text = text_decode(data, what)
    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    if not first:
        raise BillFormatError(f"{what}: the file is empty")
    delimiter = "\t" if "\t" in first and "," not in first else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    header: list[str] | None = None
    rows = 0
    try:
        for cells in reader:
            if not any(c.strip() for c in cells):
                continue
            if header is None:
                header = [c.strip().lower() for c in cells]
                _header_check(header, required, what)
                continue
            start = reader.line_num
            rows += 1
            if rows > MAX_ROWS:
                raise BillFormatError(f"{what}: more than {MAX_ROWS:,} rows")
            if len(cells) > len(header) and any(c.strip() for c in cells[len(header) :]):
                raise BillFormatError(
                    f"{what}: line {start}: {len(cells)} fields, the header has {len(header)}"
                )
            yield CsvRow(what=what, line=start, cells=dict(zip(header, cells, strict=False)))
    except csv.Error as exc:
        raise BillFormatError(f"{what}: line {reader.line_num}: {exc}") from None


def _header_check(header: list[str], required: tuple[str, ...], what: str) -> None:
    dupes = sorted({c for c in header if c and header.count(c) > 1})
    if dupes:
        raise BillFormatError(f"{what}: column {dupes[0]!r} appears twice in the header")
    missing = [c for c in required if c not in header]
    if missing:
        found = ", ".join(c[:40] for c in header[:12])
        raise BillFormatError(
            f"{what}: missing the column(s) {', '.join(missing)}; the header has: {found}"
        )


# --- JSON ------------------------------------------------------------------------------------


def _refuse_constant(name: str) -> NoReturn:
    raise BillFormatError(f"{name} is not a number")


def _int(text: str) -> int:
    if len(text.lstrip("-")) > 30:
        raise BillFormatError(f"integer out of range: {text[:40]}...")
    return int(text)


def _float(text: str) -> Decimal:
    try:
        return Decimal(text)
    except ArithmeticError:  # an exponent beyond what Decimal holds
        raise BillFormatError(f"number out of range: {text[:40]}") from None


def _loads(text: str) -> Any:
    return json.loads(text, parse_float=_float, parse_int=_int, parse_constant=_refuse_constant)


def json_documents(data: bytes | str, what: str) -> list[Any]:
    """One JSON document, or JSON Lines (one document a line, as collected responses are).
    Numbers are exact: decimals come back as Decimal."""
    text = text_decode(data, what)
    if not text.strip():
        raise BillFormatError(f"{what}: the file is empty")
    try:
        try:
            return [_loads(text)]
        except json.JSONDecodeError as whole:
            lines = [(n, ln) for n, ln in enumerate(text.splitlines(), 1) if ln.strip()]
            if len(lines) < 2 or not _is_json(lines[0][1]):
                raise BillFormatError(
                    f"{what}: not JSON: {whole.msg} (line {whole.lineno}, column {whole.colno})"
                ) from None
        if len(lines) > MAX_ROWS:
            raise BillFormatError(f"{what}: more than {MAX_ROWS:,} lines")
        docs = []
        for n, ln in lines:  # JSON Lines
            try:
                docs.append(_loads(ln))
            except json.JSONDecodeError as exc:
                raise BillFormatError(
                    f"{what}: line {n}: not JSON: {exc.msg} (column {exc.colno})"
                ) from None
        return docs
    except RecursionError:
        raise BillFormatError(f"{what}: JSON nested too deeply") from None


def _is_json(line: str) -> bool:
    try:
        _loads(line)
    except json.JSONDecodeError:
        return False
    return True


def as_object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BillFormatError(f"{where}: expected an object, got {_kind(value)}")
    return value


def as_list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise BillFormatError(f"{where}: expected a list, got {_kind(value)}")
    return value


def as_text(value: Any, where: str) -> str:
    """A string field; null is the empty string (the APIs send null for 'not grouped')."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BillFormatError(f"{where}: expected a string, got {_kind(value)}")
    return value.strip()


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, dict | list | str):
        return {dict: "an object", list: "a list", str: "a string"}[type(value)]
    return "a number"


# --- Dates -----------------------------------------------------------------------------------


def _checked(day: dt.date, where: str) -> dt.date:
    if not MIN_YEAR <= day.year <= MAX_YEAR:
        raise BillFormatError(f"{where}: date {day} is out of range")
    return day


def moment_from_unix(value: Any, where: str) -> dt.datetime:
    """Unix seconds (an integer, or its decimal text as in CSV exports) as a UTC time."""
    text = "" if isinstance(value, bool) else str(value).strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 10:
        raise BillFormatError(f"{where}: not a Unix time in seconds: {str(value)[:40]!r}")
    moment = dt.datetime.fromtimestamp(int(text), tz=dt.UTC)  # at most 2286: no overflow
    _checked(moment.date(), where)
    return moment


def moment_from_iso(value: Any, where: str) -> dt.datetime:
    """An ISO 8601 date or date and time; without an offset it is UTC (the exports' zone)."""
    text = as_text(value, where)
    try:
        parsed = dt.datetime.fromisoformat(text)
        _checked(parsed.date(), where)
        moment = parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed
        moment = moment.astimezone(dt.UTC)
    except (ValueError, OverflowError):
        raise BillFormatError(f"{where}: not a date and time: {text[:40]!r}") from None
    _checked(moment.date(), where)
    return moment


def bucket_day(start: dt.datetime, end: dt.datetime | None, where: str) -> dt.date:
    """The UTC day a provider's time bucket covers; only whole-day buckets are accepted
    (bucket_width=1d), since drift is matched per day."""
    midnight = start.hour == start.minute == start.second == start.microsecond == 0
    if not midnight or (end is not None and end - start != ONE_DAY):
        raise BillFormatError(
            f"{where}: the bucket {start:%Y-%m-%d %H:%M} is not one whole UTC day; "
            "export with a bucket width of one day"
        )
    return start.date()


def json_pages(data: bytes | str, what: str) -> list[dict[str, Any]]:
    """The pages of a paginated JSON export: one page, a list of pages, or a page a line."""
    pages: list[dict[str, Any]] = []
    for n, doc in enumerate(json_documents(data, what)):
        items = doc if isinstance(doc, list) else [doc]
        for i, page in enumerate(items):
            pages.append(as_object(page, f"{what}: document {n + 1}, page {i + 1}"))
    return pages


def page_buckets(data: bytes | str, what: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each time bucket (`data[]`) of each page, with where it stands for error messages
    (the shape the OpenAI and Anthropic cost APIs share)."""
    for p, page in enumerate(json_pages(data, what)):
        if "data" not in page:
            raise BillFormatError(f"{what}: page {p + 1}: no 'data' list of buckets")
        for b, bucket in enumerate(as_list(page["data"], f"{what}: page {p + 1}: data")):
            where = f"{what}: page {p + 1}: data[{b}]"
            yield where, as_object(bucket, where)
