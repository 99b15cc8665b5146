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

The data rows are not appended through ``ws.append``: openpyxl turns every value into a cell object
and every cell into an element through nested writer contexts, which (with a styled cell object per
money or datetime value) made an export 1.4-1.7x as slow as bare openpyxl writing plain values. Here
each row is built as one lxml ``<row>`` element, its cells exactly as openpyxl writes them, and handed
to the sheet's own stream (:func:`_sheet_data`); everything else (column widths, frozen pane, styles,
auto filter, the zip) is still openpyxl's. tests/core/test_export_speed_shapes.py checks that the sheet
XML is byte for byte what openpyxl's own cells give, so an openpyxl upgrade that changes its private
stream or its cell format fails there and not in a merchant's spreadsheet.
"""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
import unicodedata
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import Enum, auto
from pathlib import Path
from typing import Any, BinaryIO, Final, Literal
from zoneinfo import ZoneInfo

# openpyxl (and the numpy it pulls in) is imported by the functions that write a sheet, not here: this
# module is imported by every process at start-up, and a web process restarted after a crash should
# not spend a few hundred milliseconds loading a spreadsheet library before it answers.

__all__ = [
    "BATCH_ROWS",
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
# Excel's limit on a cell's text; openpyxl cuts longer text there, and so does the row writer.
_CELL_TEXT_MAX: Final = 32_767
# A number as openpyxl writes it (compat.safe_string): %-formatting turns a Decimal into a float first;
# format(value, ".16g") would keep a Decimal's trailing zeros ("10.50") and so change the file.
_number_text: Final = "%.16g".__mod__
# Rows per database fetch, for the callers that stream an export from the database. An export holds
# at most (_QUEUE_BATCHES + 3) batches of rows at once, whatever its size: those waiting for the
# writer thread, the one it writes, the one the feeder holds and the one the driver has buffered.
# RSS growth while writing 100 000 transactions from SQLite (bench/export_xlsx_raw.py): 1000-row
# batches with 2 waiting 6.3 MiB, 500 with 2 5.0 MiB, 250 with 2 4.0 MiB (2000 with 4, and every row
# copied, as before issue 20: 12 MiB). Smaller batches cost nothing measurable: a thread hop per batch
# is ~0.1 ms, and a Postgres fetch of 250 rows one round trip.
BATCH_ROWS: Final = 250
_QUEUE_BATCHES: Final = 2


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
    from openpyxl.xml.functions import Element

    wb = Workbook(write_only=True)
    ws = wb.create_sheet(title=_sheet_title(sheet_title))
    try:
        letters = [get_column_letter(idx) for idx in range(1, len(columns) + 1)]
        for letter, column in zip(letters, columns, strict=True):
            width = column.width if column.width is not None else _DEFAULT_WIDTHS[column.kind]
            ws.column_dimensions[letter].width = width
        ws.freeze_panes = "A2"
        cells = _Cells(ws)
        writers = [
            (cells.for_kind(column.kind), letter) for column, letter in zip(columns, letters, strict=True)
        ]
        count = 0
        with _sheet_data(ws) as emit:
            emit(cells.header_row([column.header for column in columns], letters))
            for values in rows:
                number = str(count + 2)
                row = Element("row", {"r": number})
                for (write, letter), value in zip(writers, values, strict=True):
                    if value is not None:
                        write(row, letter + number, value)
                if not len(row):
                    row.text = ""  # <row r="5"></row>, as openpyxl writes a row of empty cells
                emit(row)
                count += 1
        # The filter is written after the rows, so it can span the data and not just the header:
        # with a header-only range some readers filter nothing.
        ws.auto_filter.ref = f"A1:{letters[-1]}{count + 1}"
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


@contextmanager
def _sheet_data(ws: Any) -> Iterator[Callable[[Any], None]]:
    """The ``<sheetData>`` of a write-only sheet; yields the function that writes one ``<row>`` element.

    What openpyxl's ``WriteOnlyWorksheet._write_rows`` does for ``ws.append``, minus the cell objects.
    Private attributes are the only way in (see the module docstring for how that is kept honest).
    """
    ws._get_writer()  # openpyxl writes all that precedes the rows: the frozen pane, the column widths
    stream = ws._writer.xf
    xf = stream.send(True)
    with xf.element("sheetData"):
        yield xf.write
    stream.send(None)
    # At save, ws.close() closes ws._rows where it would otherwise write an empty sheetData of its own.
    ws._rows = (None for _ in ())


class _Cells:
    """Per column kind, the function that checks a value and adds its ``<c>`` to a ``<row>`` element,
    as openpyxl writes that value's cell: the same ``r``/``s``/``t`` attributes, numbers as
    ``"%.16g"``, datetimes as Excel serials, text inline with ``xml:space`` when it has outer blanks.

    A style (number format) is registered with the workbook when it is first used, as openpyxl does
    when it writes the first cell carrying it, so that styles.xml comes out the same too.
    """

    def __init__(self, ws: Any) -> None:
        self._ws = ws
        self._style_ids: dict[str, str] = {}

    def style_id(self, number_format: str) -> str:
        sid = self._style_ids.get(number_format)
        if sid is None:
            from openpyxl.cell import WriteOnlyCell

            cell = WriteOnlyCell(self._ws)
            cell.number_format = number_format
            sid = self._style_ids[number_format] = str(cell.style_id)
        return sid

    def header_row(self, headers: Sequence[str], letters: Sequence[str]) -> Any:
        from openpyxl.cell import WriteOnlyCell
        from openpyxl.styles import Font, PatternFill
        from openpyxl.xml.functions import Element

        template = WriteOnlyCell(self._ws)
        template.font = Font(bold=True)
        template.fill = PatternFill(fill_type="solid", fgColor=_HEADER_FILL_COLOUR)
        write = self._text_writer(str(template.style_id))
        row = Element("row", {"r": "1"})
        for header, letter in zip(headers, letters, strict=True):
            write(row, letter + "1", header)
        return row

    def for_kind(self, kind: ColumnKind) -> Callable[[Any, str, object], None]:
        writers: dict[ColumnKind, Callable[[], Callable[[Any, str, object], None]]] = {
            "text": self._text_writer,
            "int": self._int_writer,
            "money": self._money_writer,
            "datetime": self._datetime_writer,
            "date": self._date_writer,
        }
        return writers[kind]()

    def _text_writer(self, style_id: str | None = None) -> Callable[[Any, str, object], None]:
        from openpyxl.xml.constants import XML_NS
        from openpyxl.xml.functions import SubElement

        preserve = {f"{{{XML_NS}}}space": "preserve"}
        style = {} if style_id is None else {"s": style_id}

        def text(row: Any, ref: str, value: object) -> None:
            # str() of a StrEnum is its value; openpyxl cuts text at Excel's cell limit.
            cleaned = neutralise(value if type(value) is str else str(value))[:_CELL_TEXT_MAX]
            cell = SubElement(row, "c", {"r": ref, **style, "t": "inlineStr"})
            if not cleaned:
                cell.text = ""  # <c …></c>, as openpyxl writes an empty string
                return
            # Inline, never an error cell: "#N/A" typed by a customer stays the text it is.
            holder = SubElement(cell, "is")
            if cleaned != cleaned.strip():
                SubElement(holder, "t", preserve).text = cleaned
            else:
                SubElement(holder, "t").text = cleaned

        return text

    def _int_writer(self) -> Callable[[Any, str, object], None]:
        from openpyxl.xml.functions import SubElement

        def integer(row: Any, ref: str, value: object) -> None:
            if type(value) is not int and (isinstance(value, bool) or not isinstance(value, int)):
                raise TypeError(f"an int column takes int, not {type(value).__name__}")
            SubElement(SubElement(row, "c", {"r": ref, "t": "n"}), "v").text = _number_text(value)

        return integer

    def _money_writer(self) -> Callable[[Any, str, object], None]:
        from openpyxl.xml.functions import SubElement

        style_id = self.style_id

        def money(row: Any, ref: str, value: object) -> None:
            if type(value) is int:
                whole = True
            elif isinstance(value, bool) or not isinstance(value, int | Decimal):
                raise TypeError(f"a money column takes int or Decimal shillings, not {type(value).__name__}")
            elif isinstance(value, Decimal):
                if not value.is_finite():
                    raise ValueError(f"a money column does not take {value}")
                whole = value == value.to_integral_value()
            else:
                whole = True
            sid = style_id(WHOLE_SHILLINGS_FORMAT if whole else CENTS_FORMAT)
            SubElement(SubElement(row, "c", {"r": ref, "s": sid, "t": "n"}), "v").text = _number_text(value)

        return money

    def _datetime_writer(self) -> Callable[[Any, str, object], None]:
        from openpyxl.utils.datetime import to_excel
        from openpyxl.xml.functions import SubElement

        style_id, epoch = self.style_id, self._ws.parent.epoch

        def when(row: Any, ref: str, value: object) -> None:
            if not isinstance(value, datetime):
                raise TypeError(f"a datetime column takes datetime, not {type(value).__name__}")
            serial = to_excel(_eat_wall_clock(value), epoch)
            cell = SubElement(row, "c", {"r": ref, "s": style_id(DATETIME_FORMAT), "t": "n"})
            SubElement(cell, "v").text = _number_text(serial)

        return when

    def _date_writer(self) -> Callable[[Any, str, object], None]:
        from openpyxl.utils.datetime import to_excel
        from openpyxl.xml.functions import SubElement

        style_id, epoch = self.style_id, self._ws.parent.epoch

        def day(row: Any, ref: str, value: object) -> None:
            if isinstance(value, datetime):
                value = _eat_wall_clock(value).date()
            elif not isinstance(value, date):
                raise TypeError(f"a date column takes date, not {type(value).__name__}")
            serial = to_excel(value, epoch)
            cell = SubElement(row, "c", {"r": ref, "s": style_id(DATE_FORMAT), "t": "n"})
            SubElement(cell, "v").text = _number_text(serial)

        return day


def _eat_wall_clock(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("naive datetime in an export; pass aware datetimes (the DB returns UTC)")
    return value.astimezone(EAT).replace(tzinfo=None)
