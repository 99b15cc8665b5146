"""Spreadsheet exports (customer book, transactions); see :mod:`core.exports.xlsx`."""

from core.exports.xlsx import (
    EAT,
    XLSX_MEDIA_TYPE,
    Column,
    ColumnKind,
    build_xlsx,
    export_filename,
    iter_file,
    neutralise,
    write_xlsx,
)

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
