"""The exports write their rows themselves (core.exports.xlsx: one lxml ``<row>`` per row, not openpyxl's
cell objects) and stream them from the database as Core rows. Each file must be exactly what openpyxl's
own cells gave before: every part of the .xlsx, sheet XML and styles byte for byte, for every shape of
value an export meets, and the same refusals. On both backends, the customer book and the transaction
list built from the database equal the reference file of the rows that were put in."""

from __future__ import annotations

import io
import uuid
import zipfile
from collections.abc import Iterable, Sequence
from contextlib import aclosing
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from enum import IntEnum
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select

from core.customers.models import Customer
from core.customers.schemas import CustomerQuery, CustomerSort
from core.exports import books, global_exports
from core.exports.xlsx import (
    BATCH_ROWS,
    CENTS_FORMAT,
    DATE_FORMAT,
    DATETIME_FORMAT,
    ERROR_CODES,
    WHOLE_SHILLINGS_FORMAT,
    Column,
    ColumnKind,
    _discard_spool,
    _eat_wall_clock,
    _sheet_title,
    neutralise,
    write_xlsx,
)
from core.payments.models import Payment, PaymentSource, PaymentStatus
from core.payments.service import TransactionFilter
from core.runtime import unit_of_work
from core.tenants.models import Mode, MpesaChannel
from tests.conftest import LiveServer
from tests.support.factories import make_tenant

# -- the reference: the writer as it was, through openpyxl's public cell API ------------------------


def reference_write(
    target: io.BytesIO, *, sheet_title: str, columns: Sequence[Column], rows: Iterable[Any]
) -> int:
    """core.exports.xlsx.write_xlsx before the row writer: ws.append of plain values and WriteOnlyCells."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font, PatternFill
    from openpyxl.utils import get_column_letter

    widths: dict[ColumnKind, float] = {"text": 24, "int": 12, "money": 14, "datetime": 20, "date": 12}
    wb = Workbook(write_only=True)
    ws = wb.create_sheet(title=_sheet_title(sheet_title))
    for idx, column in enumerate(columns, start=1):
        width = column.width if column.width is not None else widths[column.kind]
        ws.column_dimensions[get_column_letter(idx)].width = width
    ws.freeze_panes = "A2"
    headers = []
    for column in columns:
        cell = WriteOnlyCell(ws, value=neutralise(column.header))
        cell.font = Font(bold=True)
        cell.fill = PatternFill(fill_type="solid", fgColor="FFD9E1F2")
        headers.append(cell)
    ws.append(headers)

    def styled(value: object, number_format: str) -> WriteOnlyCell:
        cell = WriteOnlyCell(ws)
        cell.number_format = number_format
        cell.value = value
        return cell

    def convert(kind: ColumnKind, value: object) -> object:
        if value is None:
            return None
        if kind == "text":
            cleaned = neutralise(value if isinstance(value, str) else str(value))
            if cleaned in ERROR_CODES:
                cell = WriteOnlyCell(ws, value=cleaned)
                cell.data_type = "s"
                return cell
            return cleaned
        if kind == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"an int column takes int, not {type(value).__name__}")
            return value
        if kind == "money":
            if isinstance(value, bool) or not isinstance(value, int | Decimal):
                raise TypeError(f"a money column takes int or Decimal shillings, not {type(value).__name__}")
            if isinstance(value, Decimal) and not value.is_finite():
                raise ValueError(f"a money column does not take {value}")
            whole = not isinstance(value, Decimal) or value == value.to_integral_value()
            return styled(value, WHOLE_SHILLINGS_FORMAT if whole else CENTS_FORMAT)
        if kind == "datetime":
            if not isinstance(value, datetime):
                raise TypeError(f"a datetime column takes datetime, not {type(value).__name__}")
            return styled(_eat_wall_clock(value), DATETIME_FORMAT)
        if isinstance(value, datetime):
            value = _eat_wall_clock(value).date()
        elif not isinstance(value, date):
            raise TypeError(f"a date column takes date, not {type(value).__name__}")
        return styled(value, DATE_FORMAT)

    count = 0
    try:
        for row in rows:
            ws.append([convert(c.kind, v) for c, v in zip(columns, row, strict=True)])
            count += 1
        ws.auto_filter.ref = f"A1:{get_column_letter(len(columns))}{count + 1}"
        wb.save(target)
    except BaseException:
        _discard_spool(ws)
        raise
    return count


def parts(data: bytes) -> dict[str, bytes]:
    """Every part of the .xlsx but docProps/core.xml, which carries the moment it was written."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return {name: z.read(name) for name in z.namelist() if name != "docProps/core.xml"}


def both(
    columns: Sequence[Column], rows: Sequence[Sequence[object]], title: str = "Sheet"
) -> tuple[bytes, bytes]:
    ours, theirs = io.BytesIO(), io.BytesIO()
    assert write_xlsx(ours, sheet_title=title, columns=columns, rows=rows) == len(rows)
    assert reference_write(theirs, sheet_title=title, columns=columns, rows=rows) == len(rows)
    return ours.getvalue(), theirs.getvalue()


def assert_same_file(
    columns: Sequence[Column], rows: Sequence[Sequence[object]], title: str = "Sheet"
) -> None:
    ours, theirs = both(columns, rows, title)
    ours_parts, their_parts = parts(ours), parts(theirs)
    assert ours_parts.keys() == their_parts.keys()
    # The sheet first, so that a difference shows as XML rather than as the name of a part.
    sheet = "xl/worksheets/sheet1.xml"
    assert ours_parts[sheet].decode() == their_parts[sheet].decode()
    assert ours_parts == their_parts


# -- shapes of values ----------------------------------------------------------------------------------

NAIROBI_MIDNIGHT = datetime(2026, 11, 23, 21, 0, tzinfo=UTC)  # 00:00 the next day in Nairobi
LAGOS = timezone(timedelta(hours=1))


class Colour(IntEnum):
    red = 7


TEXTS: list[object] = [
    "Wanjiku",
    "",
    " padded ",
    "trailing\n",
    "\tleading tab",
    "Otieno & Sons <Ltd> \"quoted\" 'single'",
    "Ach\x00ie\x0bng",
    '=HYPERLINK("http://x","y")',
    "+254712345678",
    "-2",
    "@SUM(A1)",
    "\r=1",
    "#N/A",
    "#DIV/0!",
    "Nyambura ☕ 🇰🇪 ñ",
    "x" * 40_000,  # past Excel's cell limit: cut at 32 767 characters
    "a=b",
    12,
    Decimal("1.50"),
    PaymentStatus.success,
    PaymentSource.c2b,
    Mode.test,
    True,
]
INTS: list[object] = [0, 1, -5, 2**31, 2**60, 10**17 + 3, Colour.red]
MONEY: list[object] = [
    0,
    150,
    -3,
    10**15,
    Decimal("150"),
    Decimal("150.00"),
    Decimal("10.50"),
    Decimal("-3.25"),
    Decimal("1E+3"),
    Decimal("0.01"),
    Decimal(12_345) / 100,
    Decimal("99999999999.99"),
]
DATETIMES: list[object] = [
    NAIROBI_MIDNIGHT,
    datetime(2026, 3, 1, 22, 0, tzinfo=LAGOS),
    datetime(2026, 1, 1, 0, 0, 0, 999_999, tzinfo=UTC),
    datetime(2024, 2, 29, 12, 30, 45, 123_456, tzinfo=UTC),
    datetime(1900, 2, 28, 23, 0, tzinfo=UTC),
    datetime(1900, 3, 1, 1, 0, tzinfo=UTC),
    datetime(1899, 12, 31, 12, 0, tzinfo=UTC),
    datetime(9999, 12, 31, 20, 59, 59, tzinfo=UTC),
]
DATES: list[object] = [date(2026, 1, 2), date(1900, 1, 1), date(1900, 3, 1), NAIROBI_MIDNIGHT]

ALL_KINDS = [
    Column("Text"),
    Column("Int", "int"),
    Column("Money", "money"),
    Column("When (EAT)", "datetime"),
    Column("Day", "date"),
]


def every_shape() -> list[tuple[object, ...]]:
    """One row per value of the longest list, the others cycling; None in every column somewhere."""
    lists = [TEXTS, INTS, MONEY, DATETIMES, DATES]
    n = max(len(values) for values in lists)
    rows: list[tuple[object, ...]] = [tuple(values[i % len(values)] for values in lists) for i in range(n)]
    rows.insert(3, (None,) * len(lists))
    rows.insert(5, ("only text", None, None, None, None))
    rows.append((None, None, Decimal("0.5"), None, None))
    return rows


class TestSameFileAsOpenpyxlCells:
    def test_every_shape_of_value(self) -> None:
        assert_same_file(ALL_KINDS, every_shape())

    @pytest.mark.parametrize("kind", ["text", "int", "money", "datetime", "date"])
    def test_each_kind_alone(self, kind: ColumnKind) -> None:
        values = {"text": TEXTS, "int": INTS, "money": MONEY, "datetime": DATETIMES, "date": DATES}[kind]
        assert_same_file([Column("Only", kind)], [(v,) for v in [*values, None]])

    def test_no_rows(self) -> None:
        assert_same_file(ALL_KINDS, [])

    def test_a_styled_column_empty_in_the_first_rows_registers_its_style_later(self) -> None:
        # Styles are numbered in the order cells first use them: the date before the money here.
        rows = [("a", None, None, None, date(2026, 1, 1)), ("b", 1, Decimal("2.50"), NAIROBI_MIDNIGHT, None)]
        assert_same_file(ALL_KINDS, rows)

    def test_header_and_title_are_cleaned_alike(self) -> None:
        columns = [Column("=cmd|' /C calc'!A0"), Column(" Spaced "), Column("A & <B>", "int", 7.5)]
        assert_same_file(columns, [("x", "y", 1)], title="'Mama/Mboga: [all] customers of 2026?'")

    @pytest.mark.parametrize(
        "columns",
        [
            books.CUSTOMER_COLUMNS,
            books.TRANSACTION_COLUMNS,
            books.INVOICE_COLUMNS,
            global_exports.TRANSACTION_COLUMNS,
            global_exports.CUSTOMER_COLUMNS,
        ],
        ids=["customers", "transactions", "invoice", "global transactions", "global customers"],
    )
    def test_the_product_columns(self, columns: list[Column]) -> None:
        samples: dict[ColumnKind, list[object]] = {
            "text": TEXTS,
            "int": INTS[:4],
            "money": MONEY,
            "datetime": DATETIMES,
            "date": DATES,
        }
        rows = [
            tuple(samples[c.kind][(i + j) % len(samples[c.kind])] for j, c in enumerate(columns))
            for i in range(30)
        ]
        rows[7] = tuple(None for _ in columns)
        assert_same_file(columns, rows)

    def test_the_file_reads_back_with_the_values_and_formats(self) -> None:
        from openpyxl import load_workbook

        ours, _ = both(ALL_KINDS, [(" padded ", 2**60, Decimal("10.50"), NAIROBI_MIDNIGHT, date(2026, 1, 2))])
        ws = load_workbook(io.BytesIO(ours)).active
        assert ws is not None
        text, number, money, when, day = ws[2]
        assert text.value == " padded " and text.data_type == "s"
        assert number.value == 2**60
        assert money.value == 10.5 and money.number_format == CENTS_FORMAT
        assert when.value == datetime(2026, 11, 24, 0, 0) and when.number_format == DATETIME_FORMAT
        assert day.value == datetime(2026, 1, 2) and day.number_format == DATE_FORMAT
        assert [c.font.bold for c in ws[1]] == [True] * 5 and ws.freeze_panes == "A2"
        assert ws.auto_filter.ref == "A1:E2"


BAD_VALUES: list[tuple[ColumnKind, object]] = [
    ("datetime", datetime(2026, 1, 1)),  # naive
    ("datetime", date(2026, 1, 1)),
    ("datetime", "2026-01-01"),
    ("date", datetime(2026, 1, 1)),  # naive
    ("date", "2026-01-01"),
    ("money", 1.5),
    ("money", True),
    ("money", "150"),
    ("money", Decimal("NaN")),
    ("money", Decimal("Infinity")),
    ("int", "3"),
    ("int", 3.0),
    ("int", False),
    ("int", Decimal(3)),
]


class TestSameRefusals:
    @pytest.mark.parametrize(("kind", "value"), BAD_VALUES)
    def test_a_wrong_value_is_refused_with_the_same_error(self, kind: ColumnKind, value: object) -> None:
        columns, rows = [Column("A", kind)], [(value,)]
        with pytest.raises(Exception) as ours:
            write_xlsx(io.BytesIO(), sheet_title="T", columns=columns, rows=rows)
        with pytest.raises(Exception) as theirs:
            reference_write(io.BytesIO(), sheet_title="T", columns=columns, rows=rows)
        assert (type(ours.value), str(ours.value)) == (type(theirs.value), str(theirs.value))

    @pytest.mark.parametrize("row", [("x",), ("x", 1, 2)])
    def test_a_row_of_the_wrong_length_is_refused(self, row: tuple[object, ...]) -> None:
        with pytest.raises(ValueError, match="zip"):
            write_xlsx(io.BytesIO(), sheet_title="T", columns=[Column("A"), Column("B", "int")], rows=[row])

    def test_rows_may_be_any_sequence(self) -> None:
        # Database rows reach the writer as they are (SQLAlchemy Row objects); lists and tuples too.
        rows: list[Sequence[object]] = [["list", 1], ("tuple", 2)]
        assert_same_file([Column("A"), Column("B", "int")], rows)


class TestGlobalTransactionRow:
    def test_commission_cents_become_shillings_and_the_rest_is_untouched(self) -> None:
        width = len(global_exports.TRANSACTION_COLUMNS)
        at = global_exports._COMMISSION
        assert global_exports.TRANSACTION_COLUMNS[at].header == "Commission (KES)"
        row = [f"v{i}" for i in range(width)]
        for cents, shillings in (
            (150, Decimal("1.5")),
            (None, Decimal(0)),
            (0, Decimal(0)),
            (10_000, Decimal(100)),
        ):
            row[at] = cents  # type: ignore[call-overload]
            out = global_exports._transaction_row(row)
            assert len(out) == width
            assert out[at] == shillings and isinstance(out[at], Decimal)
            assert [v for i, v in enumerate(out) if i != at] == [v for i, v in enumerate(row) if i != at]


# -- from the database, on either backend --------------------------------------------------------------

CUSTOMER_NAMES = ["Wanjiku", None, "=1+1", " Otieno ", "Achieng & Co", "#N/A", "Njeri 🇰🇪"]


async def _seed(
    tenant_id: uuid.UUID, count: int
) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """Customers and payments of one business; returns the rows each export should hold, in its order
    (the customer book by first seen, oldest first; the transaction list newest first)."""
    start = datetime(2026, 3, 1, 20, 59, 59, 123_456, tzinfo=UTC)
    statuses = [PaymentStatus.success, PaymentStatus.failed, PaymentStatus.pending, PaymentStatus.cancelled]
    sources = [PaymentSource.api, PaymentSource.ussd, PaymentSource.c2b]
    customer_values: list[dict[str, object]] = []
    payment_values: list[dict[str, object]] = []
    customers: list[tuple[object, ...]] = []
    payments: list[tuple[object, ...]] = []
    async with unit_of_work() as session:
        channel_id = await session.scalar(select(MpesaChannel.id).where(MpesaChannel.tenant_id == tenant_id))
        for i in range(count):
            first = start + timedelta(hours=i, microseconds=i)
            last = first + timedelta(days=i)
            name = CUSTOMER_NAMES[i % len(CUSTOMER_NAMES)]
            paid_total = 90 * i + (10**12 if i == 5 else 0)
            customer_values.append(
                {
                    "tenant_id": tenant_id,
                    "mode": Mode.live,
                    "phone": f"2547{i:08d}",
                    "name": name,
                    "requested_count": i + 1,
                    "requested_total": 100 * i,
                    "paid_count": i,
                    "paid_total": paid_total,
                    "first_seen_at": first,
                    "last_seen_at": last,
                }
            )
            customers.append((name, f"2547{i:08d}", i + 1, i, paid_total, first, last))

            status, source = statuses[i % 4], sources[i % 3]
            paid = status is PaymentStatus.success
            payer = CUSTOMER_NAMES[(i + 1) % len(CUSTOMER_NAMES)]
            receipt = f"S{uuid.uuid4().hex[:11].upper()}" if paid else None
            reference = "-ref" if i % 5 == 0 else f"INV{i}"
            result = None if i % 6 == 0 else f"Result {i} "
            completed = first + timedelta(seconds=30) if paid else None
            payment_values.append(
                {
                    "tenant_id": tenant_id,
                    "channel_id": channel_id,
                    "mode": Mode.live,
                    "source": source,
                    "status": status,
                    "amount": 1 + 37 * i,
                    "phone": f"2547{i:08d}",
                    "customer_name": payer,
                    "account_reference": reference,
                    "description": "Payment",
                    "receipt": receipt,
                    "result_desc": result,
                    "created_at": first,
                    "completed_at": completed,
                }
            )
            # What the export wrote before: statuses and sources as their values.
            payments.append(
                (
                    first,
                    f"2547{i:08d}",
                    payer,
                    1 + 37 * i,
                    status.value,
                    receipt,
                    reference,
                    source.value,
                    result,
                    completed,
                )
            )
        await session.execute(insert(Customer), customer_values)
        await session.execute(insert(Payment), payment_values)
    return customers, payments[::-1]


def reference_file(columns: Sequence[Column], title: str, rows: Sequence[Sequence[object]]) -> bytes:
    out = io.BytesIO()
    reference_write(out, sheet_title=title, columns=columns, rows=rows)
    return out.getvalue()


def assert_file_is(path: Path, expected: bytes) -> None:
    try:
        got = parts(path.read_bytes())
    finally:
        path.unlink()
    want = parts(expected)
    sheet = "xl/worksheets/sheet1.xml"
    assert got[sheet].decode() == want[sheet].decode()
    assert got == want


class TestFromTheDatabase:
    # More rows than one database fetch (core.exports.xlsx.BATCH_ROWS), so that batches follow each other.
    ROWS = 1_203

    async def test_customer_book_and_transaction_list_are_the_reference_files(
        self, server: LiveServer
    ) -> None:
        tenant, _ = await make_tenant(name="Export Shapes Duka")
        customers, payments = await _seed(tenant.id, self.ROWS)
        async with unit_of_work(readonly=True) as session:
            path, count = await books.customer_book(
                session,
                tenant_id=tenant.id,
                mode=Mode.live,
                query=CustomerQuery(sort=CustomerSort.first_seen_at, desc=False),
            )
        assert count == self.ROWS
        assert_file_is(path, reference_file(books.CUSTOMER_COLUMNS, "Customers", customers))

        async with unit_of_work(readonly=True) as session:
            path, count = await books.transaction_list(
                session, tenant_id=tenant.id, filters=TransactionFilter()
            )
        assert count == self.ROWS
        assert_file_is(path, reference_file(books.TRANSACTION_COLUMNS, "Transactions", payments))

    async def test_a_filtered_transaction_list(self, server: LiveServer) -> None:
        tenant, _ = await make_tenant(name="Export Shapes Filtered")
        _, payments = await _seed(tenant.id, 40)
        async with unit_of_work(readonly=True) as session:
            path, count = await books.transaction_list(
                session, tenant_id=tenant.id, filters=TransactionFilter(status=PaymentStatus.success)
            )
        paid = [p for p in payments if p[4] == "success"]
        assert count == len(paid) == 10
        assert_file_is(path, reference_file(books.TRANSACTION_COLUMNS, "Transactions", paid))

    async def test_stopping_early_leaves_the_session_usable(self, server: LiveServer) -> None:
        # What build_xlsx does when the writer fails or the request is cancelled: aclose the batches.
        tenant, _ = await make_tenant(name="Export Shapes Early")
        await _seed(tenant.id, BATCH_ROWS + 7)
        async with unit_of_work(readonly=True) as session:
            async with aclosing(
                books._transaction_batches(session, tenant.id, TransactionFilter())
            ) as batches:
                assert len(await anext(batches)) == BATCH_ROWS
            amount = await session.scalar(
                select(Payment.amount).where(Payment.tenant_id == tenant.id).order_by(Payment.amount).limit(1)
            )
            assert amount == 1
