"""Reading a bulk-payout file (.xlsx or .csv: phone, amount, name, reference) into rows to pay and the
rows that cannot be, each with its reason, as the preview shows them.

A header row names the columns (any order, any case; a few common names for each). What Excel does to
phone numbers is undone: 0712345678 typed into a number cell arrives as 712345678, and a long number
may arrive as a float (712345678.0). Amounts are whole shillings within M-Pesa's B2C range and the
business's own per-payout limit. The same phone and amount twice in one file is flagged on the second
row: it is left out unless the person approving includes duplicates on purpose."""

from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from core.errors import InvalidInput
from core.phones import normalize_msisdn

MAX_ROWS = 5_000
MIN_AMOUNT = 10  # M-Pesa's B2C minimum
NAME_MAX = 100
REFERENCE_MAX = 100
HEADERS = {
    "phone": ("phone", "phone number", "msisdn", "mobile", "number", "recipient phone", "mpesa number"),
    "amount": ("amount", "amount (kes)", "kes", "sum", "pay"),
    "name": ("name", "recipient", "payee", "full name", "recipient name"),
    "reference": ("reference", "ref", "remarks", "description", "note", "occasion"),
}
NEEDS_HEADER = (
    "The first row must name the columns: at least phone and amount (name and reference optional), "
    "like: phone, amount, name, reference."
)


@dataclass(frozen=True)
class BatchRow:
    row: int  # the file's row number, as a spreadsheet shows it
    phone: str
    amount: int
    name: str | None
    reference: str | None


@dataclass(frozen=True)
class RowProblem:
    row: int
    field: str
    reason: str
    # A duplicate (within the file or of a recent payout): payable, left out unless included on purpose.
    duplicate: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "field": self.field, "reason": self.reason, "duplicate": self.duplicate}


@dataclass
class CheckedFile:
    rows: list[BatchRow] = field(default_factory=list)  # payable, duplicates included
    problems: list[RowProblem] = field(default_factory=list)
    total_rows: int = 0

    @property
    def duplicate_rows(self) -> set[int]:
        return {p.row for p in self.problems if p.duplicate}


def _cells_xlsx(data: bytes) -> list[tuple[int, list[Any]]]:
    # openpyxl is imported only when a file comes: importing the app must not load it (a test checks).
    from openpyxl import load_workbook

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise InvalidInput(
            "file", f"This is not an Excel (.xlsx) file that can be read ({type(exc).__name__})."
        ) from None
    try:
        sheet = book.worksheets[0]
        out = []
        for n, values in enumerate(sheet.iter_rows(values_only=True), start=1):
            if n > MAX_ROWS + 1:
                raise InvalidInput("file", f"A batch holds at most {MAX_ROWS:,} rows: split the file.")
            out.append((n, list(values)))
        return out
    finally:
        book.close()


def _cells_csv(data: bytes) -> list[tuple[int, list[Any]]]:
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:  # pragma: no cover - cp1252 decodes every byte but five; those five end here
        raise InvalidInput("file", "The CSV file is not text: save it as CSV (UTF-8) and try again.")
    try:
        dialect: Any = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    out = []
    for n, values in enumerate(csv.reader(io.StringIO(text), dialect), start=1):
        if n > MAX_ROWS + 1:
            raise InvalidInput("file", f"A batch holds at most {MAX_ROWS:,} rows: split the file.")
        out.append((n, list(values)))
    return out


def read_cells(filename: str, data: bytes) -> list[tuple[int, list[Any]]]:
    """The file's rows as (row number, cells). Excel by its zip signature, else CSV by its name."""
    if data[:2] == b"PK":
        return _cells_xlsx(data)
    if filename.lower().endswith((".csv", ".txt")):
        return _cells_csv(data)
    raise InvalidInput("file", "Send the list as an Excel file (.xlsx) or a CSV file (.csv).")


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return " ".join(str(value).split())


def _columns(header: list[Any]) -> dict[str, int]:
    names = [_text(h).lower() for h in header]
    found: dict[str, int] = {}
    for key, options in HEADERS.items():
        for i, name in enumerate(names):
            if name in options and key not in found:
                found[key] = i
    if "phone" not in found or "amount" not in found:
        raise InvalidInput("file", NEEDS_HEADER)
    return found


def _phone(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    raw = _text(value)
    if isinstance(value, int) and len(raw) == 9 and raw[0] in "17":  # Excel dropped the leading 0
        raw = "0" + raw
    return normalize_msisdn(raw)


def _amount(value: Any, maximum: int) -> int:
    text = _text(value).replace(",", "").replace("KES", "").replace("Ksh", "").strip()
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise InvalidInput(
            "amount", f"'{text[:20]}' is not an amount: use whole shillings, like 1500."
        ) from None
    if number != number.to_integral_value():
        raise InvalidInput("amount", f"{text} has cents: M-Pesa pays whole shillings.")
    amount = int(number)
    if amount < MIN_AMOUNT:
        raise InvalidInput("amount", f"KES {amount:,} is below M-Pesa's payout minimum of KES {MIN_AMOUNT}.")
    if amount > maximum:
        raise InvalidInput(
            "amount", f"KES {amount:,} is above the most one payout may send (KES {maximum:,})."
        )
    return amount


def check_file(filename: str, data: bytes, *, max_amount: int) -> CheckedFile:
    """Every row of the file checked: payable rows, and the problems of the others (by row and field).
    Empty rows are skipped; a file with no payable row is still a preview (of what is wrong)."""
    cells = [(n, values) for n, values in read_cells(filename, data) if any(_text(v) for v in values)]
    if not cells:
        raise InvalidInput("file", "The file is empty. " + NEEDS_HEADER)
    cols = _columns(cells[0][1])
    out = CheckedFile()
    seen: dict[tuple[str, int], int] = {}
    for n, values in cells[1:]:
        out.total_rows += 1

        def cell(key: str, values: list[Any] = values) -> Any:
            i = cols.get(key)
            return values[i] if i is not None and i < len(values) else None

        try:
            phone = _phone(cell("phone"))
            amount = _amount(cell("amount"), max_amount)
        except InvalidInput as exc:
            out.problems.append(RowProblem(n, str(exc.fields.get("field", "row")), exc.message))
            continue
        name, reference = _text(cell("name")) or None, _text(cell("reference")) or None
        if name is not None and len(name) > NAME_MAX:
            out.problems.append(RowProblem(n, "name", f"The name is longer than {NAME_MAX} characters."))
            continue
        if reference is not None and len(reference) > REFERENCE_MAX:
            out.problems.append(
                RowProblem(n, "reference", f"The reference is longer than {REFERENCE_MAX} characters.")
            )
            continue
        first = seen.setdefault((phone, amount), n)
        if first != n:
            out.problems.append(
                RowProblem(
                    n,
                    "row",
                    f"Same phone and amount as row {first}: left out unless you include duplicates.",
                    duplicate=True,
                )
            )
        out.rows.append(BatchRow(n, phone, amount, name, reference))
    return out
