"""Reading a bulk-payout file: Excel and CSV, the header in any order and case, what Excel does to phone
numbers undone, bad rows named with their reason, the second of two equal rows flagged."""

from __future__ import annotations

import io

import pytest
from openpyxl import Workbook

from core.errors import InvalidInput
from core.payout_batches.parse import BatchRow, RowProblem, check_file


def xlsx(rows: list[list[object]]) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_an_excel_file_with_good_and_bad_rows() -> None:
    data = xlsx(
        [
            ["Amount", "Name", "PHONE", "Reference"],
            [1500, "Wanjiru", 712345678, "Salary Nov"],  # Excel dropped the 0
            [2000.0, "Otieno", 254722000111.0, None],  # a long number arrives as a float
            ["1,000", None, "0733 000 222", "Bonus"],
            [150.5, "Cents", "0722000333", None],
            [5, "Too little", "0722000444", None],
            [300_000, "Too much", "0722000555", None],
            [100, "Bad phone", "12345", None],
            [None, None, None, None],  # an empty row is skipped
            [1500, "Wanjiru again", "+254712345678", None],
        ]
    )
    checked = check_file("november.xlsx", data, max_amount=70_000)
    assert checked.total_rows == 8
    assert checked.rows == [
        BatchRow(2, "254712345678", 1500, "Wanjiru", "Salary Nov"),
        BatchRow(3, "254722000111", 2000, "Otieno", None),
        BatchRow(4, "254733000222", 1000, None, "Bonus"),
        BatchRow(10, "254712345678", 1500, "Wanjiru again", None),
    ]
    assert checked.problems == [
        RowProblem(5, "amount", "150.5 has cents: M-Pesa pays whole shillings."),
        RowProblem(6, "amount", "KES 5 is below M-Pesa's payout minimum of KES 10."),
        RowProblem(7, "amount", "KES 300,000 is above the most one payout may send (KES 70,000)."),
        checked.problems[3],  # the phone's message is core.phones' own, checked below
        RowProblem(
            10,
            "row",
            "Same phone and amount as row 2: left out unless you include duplicates.",
            duplicate=True,
        ),
    ]
    assert checked.problems[3].row == 8 and checked.problems[3].field == "phone"
    assert checked.problems[3].reason.startswith("'12345' is not a Kenyan mobile number.")
    assert checked.duplicate_rows == {10}


def test_a_csv_file_with_semicolons() -> None:
    data = b"phone;amount;name\n0712345678;1200;Akinyi\n0722000111;900;\n"
    checked = check_file("list.csv", data, max_amount=70_000)
    assert checked.rows == [
        BatchRow(2, "254712345678", 1200, "Akinyi", None),
        BatchRow(3, "254722000111", 900, None, None),
    ]
    assert checked.problems == []


@pytest.mark.parametrize(
    ("filename", "data", "message"),
    [
        ("list.pdf", b"%PDF-1.4", "Send the list as an Excel file (.xlsx) or a CSV file (.csv)."),
        (
            "list.xlsx",
            b"PK\x03\x04not really",
            "This is not an Excel (.xlsx) file that can be read (BadZipFile).",
        ),
        (
            "list.csv",
            b"name,amount\nAkinyi,100\n",
            "The first row must name the columns: at least phone and amount (name and reference optional), "
            "like: phone, amount, name, reference.",
        ),
        (
            "list.csv",
            b"\n\n",
            "The file is empty. The first row must name the columns: at least phone and "
            "amount (name and reference optional), like: phone, amount, name, reference.",
        ),
    ],
)
def test_files_that_cannot_be_read(filename: str, data: bytes, message: str) -> None:
    with pytest.raises(InvalidInput) as info:
        check_file(filename, data, max_amount=70_000)
    assert (info.value.fields["field"], info.value.message) == ("file", message)
