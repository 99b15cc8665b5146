"""Exports are read back with openpyxl in normal mode and checked cell by cell."""

from __future__ import annotations

import asyncio
import io
import tempfile
import tracemalloc
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import aclosing
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from openpyxl import load_workbook
from openpyxl.worksheet.worksheet import Worksheet

from core.exports.xlsx import (
    CENTS_FORMAT,
    WHOLE_SHILLINGS_FORMAT,
    XLSX_MEDIA_TYPE,
    Column,
    build_xlsx,
    export_filename,
    iter_file,
    neutralise,
    write_xlsx,
)

CUSTOMER_COLUMNS = [
    Column("Name"),
    Column("Phone", width=16),
    Column("Payments", "int"),
    Column("Total (KES)", "money"),
    Column("Last payment (EAT)", "datetime"),
    Column("Since", "date"),
]

INJECTIONS = ['=HYPERLINK("http://x","y")', "+1", "-2", "@SUM(A1)", "\t=1"]


def read_sheet(source: Path | io.BytesIO) -> Worksheet:
    ws = load_workbook(source).active
    assert isinstance(ws, Worksheet)
    return ws


def files_in(directory: Path) -> list[Path]:
    return list(directory.iterdir())


def numbered_rows(n: int) -> Iterator[tuple[object, ...]]:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(n):
        yield (f"Customer {i}", i, start + timedelta(seconds=i))


NUMBERED_COLUMNS = [Column("Name"), Column("No.", "int"), Column("At (EAT)", "datetime")]


async def in_batches(rows: Iterator[Sequence[object]], size: int) -> AsyncIterator[list[Sequence[object]]]:
    batch: list[Sequence[object]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


class TestNeutralise:
    @pytest.mark.parametrize("payload", [*INJECTIONS, "\r=1"])
    def test_formula_starts_get_an_apostrophe(self, payload: str) -> None:
        assert neutralise(payload) == "'" + payload

    @pytest.mark.parametrize("text", ["Wanjiku", "Otieno & Sons", "254712345678", "a=b", ""])
    def test_ordinary_text_is_unchanged(self, text: str) -> None:
        assert neutralise(text) == text

    def test_illegal_xml_characters_are_dropped(self) -> None:
        assert neutralise("Wan\x00ji\x07ku\x1f") == "Wanjiku"

    def test_a_formula_hidden_behind_a_control_character_is_still_caught(self) -> None:
        assert neutralise("\x00=1+1") == "'=1+1"


class TestWriteXlsxLayout:
    @pytest.fixture
    def sheet(self, tmp_path: Path) -> Worksheet:
        path = tmp_path / "book.xlsx"
        rows = [("Wanjiku", "254712345678", 3, 450, datetime(2026, 11, 23, 9, tzinfo=UTC), date(2026, 1, 2))]
        write_xlsx(path, sheet_title="Customers", columns=CUSTOMER_COLUMNS, rows=rows)
        return read_sheet(path)

    def test_header_is_bold_filled_and_frozen(self, sheet: Worksheet) -> None:
        headers = [cell.value for cell in sheet[1]]
        assert headers == [column.header for column in CUSTOMER_COLUMNS]
        assert all(cell.font.bold for cell in sheet[1])
        assert all(cell.fill.fill_type == "solid" for cell in sheet[1])
        assert not sheet["A2"].font.bold
        assert sheet.freeze_panes == "A2"
        assert sheet.title == "Customers"

    def test_widths_follow_the_column_or_the_kind(self, sheet: Worksheet) -> None:
        widths = {letter: sheet.column_dimensions[letter].width for letter in "ABCDEF"}
        assert widths == {"A": 24, "B": 16, "C": 12, "D": 14, "E": 20, "F": 12}

    def test_autofilter_covers_header_and_rows(self, sheet: Worksheet) -> None:
        assert sheet.auto_filter.ref == "A1:F2"

    def test_unsafe_sheet_title_is_cleaned(self) -> None:
        out = io.BytesIO()
        write_xlsx(out, sheet_title="'Mama/Mboga: [all] customers of 2026?'", columns=[Column("A")], rows=[])
        title = read_sheet(out).title
        assert title == "Mama-Mboga- -all- customers of"
        assert len(title) <= 31


class TestWriteXlsxValues:
    def write_and_read(self, columns: Sequence[Column], rows: list[Sequence[object]]) -> Worksheet:
        out = io.BytesIO()
        assert write_xlsx(out, sheet_title="T", columns=columns, rows=rows) == len(rows)
        out.seek(0)
        return read_sheet(out)

    def test_customer_row_round_trips(self) -> None:
        paid_at = datetime(2026, 11, 23, 21, 30, 5, tzinfo=UTC)  # 00:30:05 next day in Nairobi
        ws = self.write_and_read(
            CUSTOMER_COLUMNS, [("Wanjiku", "254712345678", 3, 12_500, paid_at, date(2025, 6, 1))]
        )
        name, phone, count, total, last, since = ws[2]
        assert name.value == "Wanjiku"
        assert phone.value == "254712345678" and phone.data_type == "s"
        assert count.value == 3 and type(count.value) is int
        assert total.value == 12_500 and total.number_format == WHOLE_SHILLINGS_FORMAT
        assert last.value == datetime(2026, 11, 24, 0, 30, 5)
        assert last.is_date
        assert since.value == datetime(2025, 6, 1)  # openpyxl reads every date cell back as a datetime
        assert since.number_format == "yyyy-mm-dd"

    def test_other_timezones_are_converted_to_eat(self) -> None:
        lagos = timezone(timedelta(hours=1))
        ws = self.write_and_read(
            [Column("At", "datetime"), Column("Day", "date")],
            [(datetime(2026, 3, 1, 22, 0, tzinfo=lagos), datetime(2026, 3, 1, 22, 0, tzinfo=UTC))],
        )
        assert ws["A2"].value == datetime(2026, 3, 2, 0, 0)
        assert ws["B2"].value == datetime(2026, 3, 2)

    def test_decimal_money_keeps_its_cents_visible(self) -> None:
        ws = self.write_and_read([Column("Amount", "money")], [(Decimal("150"),), (Decimal("10.50"),)])
        assert ws["A2"].value == 150 and ws["A2"].number_format == WHOLE_SHILLINGS_FORMAT
        assert ws["A3"].value == 10.5 and ws["A3"].number_format == CENTS_FORMAT

    @pytest.mark.parametrize("payload", INJECTIONS)
    def test_formula_payloads_come_back_as_text(self, payload: str) -> None:
        ws = self.write_and_read([Column("Name")], [(payload,)])
        assert ws["A2"].data_type == "s"
        assert ws["A2"].value == "'" + payload

    def test_carriage_return_payload_comes_back_as_text(self) -> None:
        ws = self.write_and_read([Column("Name")], [("\r=1",)])
        # XML parsers normalise a bare CR to LF, so only the neutralisation itself is checked.
        assert ws["A2"].data_type == "s"
        assert ws["A2"].value.startswith("'")

    def test_error_code_lookalikes_stay_text(self) -> None:
        ws = self.write_and_read([Column("Name")], [("#N/A",)])
        assert ws["A2"].data_type == "s" and ws["A2"].value == "#N/A"

    def test_illegal_characters_are_stripped_not_fatal(self) -> None:
        ws = self.write_and_read([Column("Name")], [("Ach\x00ie\x0bng",)])
        assert ws["A2"].value == "Achieng"

    def test_none_leaves_cells_empty(self) -> None:
        ws = self.write_and_read(CUSTOMER_COLUMNS, [(None,) * len(CUSTOMER_COLUMNS)])
        assert [cell.value for cell in ws["A2:F2"][0]] == [None] * 6

    def test_headers_are_neutralised_too(self) -> None:
        ws = self.write_and_read([Column("=cmd|' /C calc'!A0")], [])
        assert ws["A1"].value == "'=cmd|' /C calc'!A0" and ws["A1"].data_type == "s"

    def test_path_and_file_targets(self, tmp_path: Path) -> None:
        as_str = tmp_path / "a.xlsx"
        assert write_xlsx(str(as_str), sheet_title="T", columns=[Column("A")], rows=[("x",)]) == 1
        assert read_sheet(as_str)["A2"].value == "x"


class TestWriteXlsxRefusals:
    @pytest.mark.parametrize(
        ("column", "value", "error"),
        [
            (Column("At", "datetime"), datetime(2026, 1, 1), ValueError),  # naive: zone unknown
            (Column("Amount", "money"), 1.5, TypeError),  # floats are never money
            (Column("Amount", "money"), True, TypeError),
            (Column("Count", "int"), "3", TypeError),
            (Column("Day", "date"), "2026-01-01", TypeError),
        ],
    )
    def test_wrong_values_raise(self, column: Column, value: object, error: type[Exception]) -> None:
        with pytest.raises(error):
            write_xlsx(io.BytesIO(), sheet_title="T", columns=[column], rows=[(value,)])

    def test_row_of_wrong_length_raises(self) -> None:
        with pytest.raises(ValueError, match="zip"):
            write_xlsx(io.BytesIO(), sheet_title="T", columns=[Column("A"), Column("B")], rows=[("x",)])

    def test_failure_leaves_no_openpyxl_spool_file(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
        rows = [("ok", 1), ("bad", "not a number")]
        with pytest.raises(TypeError):
            write_xlsx(io.BytesIO(), sheet_title="T", columns=[Column("A"), Column("B", "int")], rows=rows)
        assert files_in(tmp_path) == []


class TestBuildXlsx:
    async def test_writes_all_batches_and_counts_rows(self, tmp_path: Path) -> None:
        path, count = await build_xlsx(
            sheet_title="Customers",
            columns=NUMBERED_COLUMNS,
            batches=in_batches(numbered_rows(2_345), 1_000),
            directory=str(tmp_path),
        )
        assert count == 2_345
        assert path.parent == tmp_path and path.suffix == ".xlsx"
        ws = read_sheet(path)
        assert ws.max_row == 2_346
        assert [c.value for c in ws[2_346]] == ["Customer 2344", 2_344, datetime(2026, 1, 1, 3, 39, 4)]

    async def test_no_rows_gives_a_header_only_sheet(self, tmp_path: Path) -> None:
        path, count = await build_xlsx(
            sheet_title="T",
            columns=NUMBERED_COLUMNS,
            batches=in_batches(iter([]), 10),
            directory=str(tmp_path),
        )
        assert count == 0
        assert read_sheet(path).max_row == 1

    async def test_failing_batches_remove_the_file(self, tmp_path: Path) -> None:
        async def broken() -> AsyncIterator[list[Sequence[object]]]:
            async for batch in in_batches(numbered_rows(5_000), 1_000):
                yield batch
            raise ConnectionError("database went away")

        with pytest.raises(ConnectionError, match="went away"):
            await build_xlsx(
                sheet_title="T", columns=NUMBERED_COLUMNS, batches=broken(), directory=str(tmp_path)
            )
        assert files_in(tmp_path) == []

    async def test_failing_writer_removes_the_file_and_closes_the_batches(self, tmp_path: Path) -> None:
        closed = False

        async def endless() -> AsyncIterator[list[Sequence[object]]]:
            nonlocal closed
            try:
                yield [("fine", 1, datetime(2026, 1, 1, tzinfo=UTC))]
                yield [("naive", 2, datetime(2026, 1, 1))]
                while True:
                    yield [("more", 3, datetime(2026, 1, 1, tzinfo=UTC))]
            finally:
                closed = True

        with pytest.raises(ValueError, match="naive datetime"):
            await build_xlsx(
                sheet_title="T", columns=NUMBERED_COLUMNS, batches=endless(), directory=str(tmp_path)
            )
        assert files_in(tmp_path) == []
        assert closed

    async def test_cancellation_removes_the_file(self, tmp_path: Path) -> None:
        started = asyncio.Event()

        async def slow() -> AsyncIterator[list[Sequence[object]]]:
            yield [("first", 1, None)]
            started.set()
            await asyncio.sleep(3600)
            yield [("never", 2, None)]

        task = asyncio.create_task(
            build_xlsx(sheet_title="T", columns=NUMBERED_COLUMNS, batches=slow(), directory=str(tmp_path))
        )
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert files_in(tmp_path) == []

    async def test_event_loop_keeps_running_during_a_large_build(self, tmp_path: Path) -> None:
        ticks = 0
        done = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not done.is_set():
                await asyncio.sleep(0.01)
                ticks += 1

        ticking = asyncio.create_task(ticker())
        try:
            _, count = await build_xlsx(
                sheet_title="T",
                columns=NUMBERED_COLUMNS,
                batches=in_batches(numbered_rows(50_000), 1_000),
                directory=str(tmp_path),
            )
        finally:
            done.set()
            await ticking
        assert count == 50_000
        # A build run on the loop itself would leave the ticker at 0 or 1 tick.
        assert ticks >= 5


class TestWriterMemory:
    @staticmethod
    def writer_peak(rows: int, target: Path) -> int:
        start = datetime(2026, 1, 1, tzinfo=UTC)
        tracemalloc.start()
        try:
            write_xlsx(
                target,
                sheet_title="T",
                # Datetime cells take the styled-cell path, the one that allocates per cell.
                columns=[Column("At (EAT)", "datetime")],
                rows=((start + timedelta(seconds=i),) for i in range(rows)),
            )
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    def test_peak_memory_does_not_grow_with_rows(self, tmp_path: Path) -> None:
        # A behaviour assertion, not a timing one: rows must be streamed to disk, not accumulated,
        # so ten times the rows may not cost anywhere near ten times the memory. tracemalloc counts
        # bytes Python allocated, which does not depend on machine load the way durations do, so a
        # 2x margin is safe. The output goes to a file: a BytesIO would itself grow with the rows.
        small = self.writer_peak(5_000, tmp_path / "small.xlsx")
        large = self.writer_peak(50_000, tmp_path / "large.xlsx")
        assert large < 2 * small, (small, large)


class TestIterFile:
    @pytest.fixture
    def payload(self, tmp_path: Path) -> tuple[Path, bytes]:
        data = bytes(range(256)) * 1_000  # 256 000 bytes: several chunks and a short last one
        path = tmp_path / "export.xlsx"
        path.write_bytes(data)
        return path, data

    async def test_chunks_make_up_the_file_which_is_then_removed(self, payload: tuple[Path, bytes]) -> None:
        path, data = payload
        chunks = [chunk async for chunk in iter_file(path, chunk_size=100_000)]
        assert [len(c) for c in chunks] == [100_000, 100_000, 56_000]
        assert b"".join(chunks) == data
        assert not path.exists()

    async def test_stopping_early_still_removes_the_file(self, payload: tuple[Path, bytes]) -> None:
        path, _ = payload
        async with aclosing(iter_file(path, chunk_size=1_000)) as chunks:
            async for _chunk in chunks:
                break
        assert not path.exists()

    async def test_keeps_the_file_when_asked(self, payload: tuple[Path, bytes]) -> None:
        path, data = payload
        assert b"".join([chunk async for chunk in iter_file(path, delete=False)]) == data
        assert path.exists()


class TestExportFilename:
    def test_prefix_is_slugified_and_dated_in_eat(self) -> None:
        late_utc = datetime(2026, 11, 22, 22, 30, tzinfo=UTC)  # already the 23rd in Nairobi
        assert (
            export_filename("Customers — Mama Mboga!", now=late_utc) == "customers-mama-mboga-2026-11-23.xlsx"
        )

    def test_accents_are_folded_and_empty_prefix_has_a_fallback(self) -> None:
        day = datetime(2026, 1, 5)
        assert export_filename("Café Njeri", now=day) == "cafe-njeri-2026-01-05.xlsx"
        assert export_filename("***", now=day) == "export-2026-01-05.xlsx"

    def test_default_is_today(self) -> None:
        assert export_filename("x").endswith(".xlsx")

    def test_media_type(self) -> None:
        assert XLSX_MEDIA_TYPE == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def test_copied_openpyxl_constants_match_openpyxl() -> None:
    # core.exports.xlsx keeps its own copies so importing it does not load openpyxl at start-up.
    from openpyxl.cell.cell import ERROR_CODES, ILLEGAL_CHARACTERS_RE

    from core.exports import xlsx

    assert xlsx.ILLEGAL_CHARACTERS_RE.pattern == ILLEGAL_CHARACTERS_RE.pattern
    assert xlsx.ERROR_CODES == ERROR_CODES


def test_importing_the_app_does_not_load_openpyxl() -> None:
    import subprocess
    import sys

    code = "import sys, web.app, web.cli; print('openpyxl' in sys.modules, 'numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
