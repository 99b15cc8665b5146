"""Streaming Excel exports of the customer book and the transaction list.

openpyxl's write-only mode serialises each row as soon as it is appended (strings inline, no
shared-string table), so memory stays flat however many rows a tenant has; the cost is that
everything about the sheet's layout (widths, frozen pane) must be decided before the first row.

Conventions, so that every export reads the same way:

* Text cells are passed through :func:`neutralise` (formula injection, illegal XML characters).
* Money is whole shillings, the unit M-Pesa moves; the format is ``#,##0``. A Decimal with cents
  is still written exactly, formatted ``#,##0.00`` so that the cents are never hidden by rounding.
* Datetimes are written in East Africa Time (Africa/Nairobi), because Excel has no time zones and
  merchants read their books in local time. Callers should say so in the header, e.g.
  ``"Last payment (EAT)"``. Naive datetimes are refused: the database hands back aware UTC values,
  so a naive one is a bug upstream and guessing its zone would shift it by three hours silently.
* Dates and datetimes use ISO order (``yyyy-mm-dd``): unambiguous whatever the reader's locale.
"""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
import unicodedata
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import Enum, auto
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Final, Literal
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from openpyxl.cell import WriteOnlyCell

# openpyxl (and the numpy it pulls in) is imported by the functions that write a sheet, not here: this
# module is imported by every process at start-up, and a web process restarted after a crash should
# not spend a few hundred milliseconds loading a spreadsheet library before it answers.

__all__ = [
    "EAT",
    "XLSX_MEDIA_TYPE",
    "Column",
    "ColumnKind",
    "build_xlsx",
    "export_filename",
    "iter_file",
    "neutralise",
    "write_xlsx",
]

XLSX_MEDIA_TYPE: Final = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
EAT: Final = ZoneInfo("Africa/Nairobi")

ColumnKind = Literal["text", "int", "money", "datetime", "date"]

_DEFAULT_WIDTHS: Final[dict[ColumnKind, float]] = {
    "text": 24,
    "int": 12,
    "money": 14,
    "datetime": 20,
    "date": 12,
}
WHOLE_SHILLINGS_FORMAT: Final = "#,##0"
CENTS_FORMAT: Final = "#,##0.00"
DATETIME_FORMAT: Final = "yyyy-mm-dd hh:mm:ss"
DATE_FORMAT: Final = "yyyy-mm-dd"

_HEADER_FILL_COLOUR: Final = "FFD9E1F2"
# openpyxl.cell.cell's own two constants, copied so neutralise() needs no openpyxl (a test compares them).
ILLEGAL_CHARACTERS_RE: Final = re.compile(r"[\000-\010]|[\013-\014]|[\016-\037]")
ERROR_CODES: Final = ("#NULL!", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#N/A")

# OWASP's CSV-injection list: = + - @ start a formula in Excel, LibreOffice and Google Sheets, and a
# leading tab or carriage return can be swallowed on import, exposing the character after it.
_FORMULA_TRIGGERS: Final = ("=", "+", "-", "@", "\t", "\r")
# Excel's own limits; openpyxl only warns about a long title and some readers then refuse the file.
_SHEET_TITLE_MAX: Final = 31
_SHEET_TITLE_FORBIDDEN: Final = re.compile(r"[\\*?:/\[\]]")
_SLUG_MAX: Final = 80
# Batches waiting for the writer thread; with DB batches of ~1000 rows this bounds what is held in
# memory to a few thousand rows whatever the size of the export.
_QUEUE_BATCHES: Final = 4


@dataclass(frozen=True)
class Column:
    header: str
    kind: ColumnKind = "text"
    width: float | None = None  # None: a default that suits the kind


def neutralise(value: str) -> str:
    """Make a string safe to put in a spreadsheet cell.

    Characters XML cannot carry (most C0 controls) are dropped; openpyxl would raise on them, and
    one stray byte in a customer's name must not break the tenant's whole export.

    A string that a spreadsheet would read as a formula (first character ``= + - @``, or tab or
    carriage return) gets a leading apostrophe, as OWASP recommends for CSV injection. The
    apostrophe is visible in the cell: that is deliberate, because it stays part of the value when
    the sheet is saved on as CSV or pasted elsewhere, where a style-only marker (Excel's
    "quotePrefix") would be lost and the formula would come back to life. The price is that text
    such as ``-2`` or ``+2547…`` shows as ``'-2``; numbers belong in ``int``/``money`` columns.
    """
    cleaned = ILLEGAL_CHARACTERS_RE.sub("", value)
    if cleaned.startswith(_FORMULA_TRIGGERS):
        return "'" + cleaned
    return cleaned


def write_xlsx(
    target: BinaryIO | str | os.PathLike[str],
    *,
    sheet_title: str,
    columns: Sequence[Column],
    rows: Iterable[Sequence[object]],
) -> int:
    """Write one sheet (bold filled header, frozen, filterable) and return the number of data rows.

    Each row must have exactly one value per column; ``None`` leaves the cell empty. Values must
    suit their column: ``int`` takes ints, ``money`` ints or Decimals (never floats), ``datetime``
    aware datetimes, ``date`` dates or aware datetimes; ``text`` takes anything and writes ``str()``
    of it. A mismatch raises instead of writing a wrong figure into someone's books.
    """
    if not columns:
        raise ValueError("an export needs at least one column")
    from openpyxl import Workbook
    from openpyxl.utils import get_column_letter

    wb = Workbook(write_only=True)
    ws = wb.create_sheet(title=_sheet_title(sheet_title))
    try:
        for idx, column in enumerate(columns, start=1):
            width = column.width if column.width is not None else _DEFAULT_WIDTHS[column.kind]
            ws.column_dimensions[get_column_letter(idx)].width = width
        ws.freeze_panes = "A2"
        ws.append([_header_cell(ws, column.header) for column in columns])

        converters = [_converter(ws, column.kind) for column in columns]
        count = 0
        for row in rows:
            ws.append([convert(value) for convert, value in zip(converters, row, strict=True)])
            count += 1
        # The filter is written after the rows, so it can span the data and not just the header:
        # with a header-only range some readers filter nothing.
        ws.auto_filter.ref = f"A1:{get_column_letter(len(columns))}{count + 1}"
        wb.save(target)
    except BaseException:
        _discard_spool(ws)
        raise
    return count


async def build_xlsx(
    *,
    sheet_title: str,
    columns: Sequence[Column],
    batches: AsyncIterator[Sequence[Sequence[object]]],
    directory: str | None = None,
) -> tuple[Path, int]:
    """Write the rows from ``batches`` to a new .xlsx file and return ``(path, row_count)``.

    The writing runs in a worker thread, because it is CPU-bound and would stall every other
    request on the event loop. ``batches`` is consumed (and closed, when it has ``aclose``) here,
    a few batches ahead of the writer at most. The caller owns the returned file (see
    :func:`iter_file`). On any failure, on either side, or on cancellation, the file is removed
    and the exception propagates. A batch must not be modified after it has been yielded.

    While it writes, openpyxl spools the uncompressed sheet XML (several times the final size) in
    the default temp directory, whatever ``directory`` says.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Sequence[Sequence[object]] | _Signal] = asyncio.Queue(maxsize=_QUEUE_BATCHES)
    # Created before any await so that no cancellation can leave an untracked file behind.
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - the writer thread closes it
        prefix="lipapush-export-", suffix=".xlsx", dir=directory, delete=False
    )
    path = Path(handle.name)

    def queued_rows() -> Iterator[Sequence[object]]:
        while True:
            item = asyncio.run_coroutine_threadsafe(queue.get(), loop).result()
            if isinstance(item, _Signal):
                if item is _Signal.END:
                    return
                raise _Aborted
            yield from item

    def write() -> int:
        with handle:
            return write_xlsx(handle, sheet_title=sheet_title, columns=columns, rows=queued_rows())

    writer = asyncio.ensure_future(asyncio.to_thread(write))
    feeder = asyncio.ensure_future(_feed(batches, queue))
    try:
        await asyncio.wait((writer, feeder), return_when=asyncio.FIRST_EXCEPTION)
        # A failed feeder is the cause: the writer then only fails with _Aborted.
        failure = (feeder.exception() if feeder.done() else None) or writer.exception()
        if failure is not None:
            raise failure
        return path, writer.result()
    except BaseException:
        feeder.cancel()
        _abort(queue)
        try:
            # A thread cannot be cancelled: wait for the writer to let go of the file.
            await asyncio.gather(feeder, writer, return_exceptions=True)
        finally:
            handle.close()
            # Synchronous on purpose: under anyio-style cancellation (Starlette) any further await
            # here would be cancelled at once and the file would stay; an unlink is one syscall.
            path.unlink(missing_ok=True)  # noqa: ASYNC240
        raise


async def iter_file(
    path: Path, *, chunk_size: int = 64 * 1024, delete: bool = True
) -> AsyncGenerator[bytes, None]:
    """Yield a file's bytes in chunks, reading in a thread; then remove the file if ``delete``.

    The file is removed once iteration has started and then ends, is closed early (``aclose``) or
    is cancelled. A generator that is never started removes nothing, so a caller that may drop it
    unstarted should also remove the file itself (``Path.unlink(missing_ok=True)``).
    """
    try:
        handle = await asyncio.to_thread(path.open, "rb")
        try:
            while chunk := await asyncio.to_thread(handle.read, chunk_size):
                yield chunk
        finally:
            handle.close()
    finally:
        if delete:
            # Synchronous for the same reason as in build_xlsx: cleanup must not await.
            path.unlink(missing_ok=True)  # noqa: ASYNC240


def export_filename(prefix: str, *, now: datetime | None = None) -> str:
    """``"customers-mama-mboga-2026-11-23.xlsx"``: a safe ASCII slug of ``prefix`` and the EAT date."""
    moment = now if now is not None else datetime.now(EAT)
    if moment.tzinfo is not None:
        moment = moment.astimezone(EAT)
    ascii_text = unicodedata.normalize("NFKD", prefix).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    slug = slug[:_SLUG_MAX].rstrip("-") or "export"
    return f"{slug}-{moment:%Y-%m-%d}.xlsx"


class _Signal(Enum):
    END = auto()
    ABORT = auto()


class _Aborted(Exception):
    """Raised in the writer thread when the feeding side has given up."""


async def _feed(
    batches: AsyncIterator[Sequence[Sequence[object]]],
    queue: asyncio.Queue[Sequence[Sequence[object]] | _Signal],
) -> None:
    try:
        async for batch in batches:
            if batch:
                await queue.put(batch)
        await queue.put(_Signal.END)
    finally:
        # Stopping early must release what the iterator holds, e.g. a server-side DB cursor.
        aclose = getattr(batches, "aclose", None)
        if aclose is not None:
            await aclose()


def _abort(queue: asyncio.Queue[Sequence[Sequence[object]] | _Signal]) -> None:
    # Nothing else puts once the feeder is cancelled, so after draining there is room; the writer
    # thread, if still waiting on the queue, wakes up to the signal and raises _Aborted.
    while not queue.empty():
        queue.get_nowait()
    queue.put_nowait(_Signal.ABORT)


def _discard_spool(ws: object) -> None:
    # openpyxl spools the sheet XML to its own temp file and deletes it only at save or interpreter
    # exit; a long-running server would collect one per failed export. Private attributes are the
    # only handle on it, hence the defensive getattr/suppress.
    rows = getattr(ws, "_rows", None)
    if rows is not None:
        with suppress(Exception):
            rows.close()
    writer = getattr(ws, "_writer", None)
    if writer is None:
        return
    with suppress(Exception):
        writer.close()
    with suppress(Exception):
        writer.cleanup()


def _sheet_title(title: str) -> str:
    cleaned = _SHEET_TITLE_FORBIDDEN.sub("-", ILLEGAL_CHARACTERS_RE.sub("", title))
    # Excel also rejects a title that starts or ends with an apostrophe.
    cleaned = cleaned[:_SHEET_TITLE_MAX].strip().strip("'").strip()
    return cleaned or "Sheet1"


def _header_cell(ws: object, header: str) -> WriteOnlyCell:
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font, PatternFill

    cell = WriteOnlyCell(ws, value=neutralise(header))
    cell.font = Font(bold=True)
    cell.fill = PatternFill(fill_type="solid", fgColor=_HEADER_FILL_COLOUR)
    return cell


def _converter(ws: object, kind: ColumnKind) -> Callable[[object], object]:
    """One function per column turning a Python value into what ws.append should get.

    Plain values are cheapest (openpyxl reuses one cell for them); a WriteOnlyCell is built only
    where a number format is needed.
    """
    from openpyxl.cell import WriteOnlyCell

    def text(value: object) -> object:
        if value is None:
            return None
        cleaned = neutralise(value if isinstance(value, str) else str(value))
        if cleaned in ERROR_CODES:
            # openpyxl would store "#N/A" and friends as an error cell, not as the text it is.
            cell = WriteOnlyCell(ws, value=cleaned)
            cell.data_type = "s"
            return cell
        return cleaned

    def integer(value: object) -> object:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"an int column takes int, not {type(value).__name__}")
        return value

    def money(value: object) -> object:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | Decimal):
            raise TypeError(f"a money column takes int or Decimal shillings, not {type(value).__name__}")
        if isinstance(value, Decimal):
            if not value.is_finite():
                raise ValueError(f"a money column does not take {value}")
            whole = value == value.to_integral_value()
        else:
            whole = True
        cell = WriteOnlyCell(ws)
        cell.number_format = WHOLE_SHILLINGS_FORMAT if whole else CENTS_FORMAT
        cell.value = value
        return cell

    def when(value: object) -> object:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"a datetime column takes datetime, not {type(value).__name__}")
        cell = WriteOnlyCell(ws)
        cell.number_format = DATETIME_FORMAT
        cell.value = _eat_wall_clock(value)
        return cell

    def day(value: object) -> object:
        if value is None:
            return None
        if isinstance(value, datetime):
            value = _eat_wall_clock(value).date()
        elif not isinstance(value, date):
            raise TypeError(f"a date column takes date, not {type(value).__name__}")
        cell = WriteOnlyCell(ws)
        cell.number_format = DATE_FORMAT
        cell.value = value
        return cell

    converters: dict[ColumnKind, Callable[[object], object]] = {
        "text": text,
        "int": integer,
        "money": money,
        "datetime": when,
        "date": day,
    }
    return converters[kind]


def _eat_wall_clock(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("naive datetime in an export; pass aware datetimes (the DB returns UTC)")
    return value.astimezone(EAT).replace(tzinfo=None)
