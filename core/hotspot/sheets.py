"""Printed voucher cards: an HTML sheet for A4 (cut into cards) or a 58 mm thermal roll, and the
same batch as `.xlsx`."""

from __future__ import annotations

import html
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from core.exports.xlsx import Column, build_xlsx
from core.hotspot.models import Voucher, VoucherStatus
from core.hotspot.provision import validity_text

VOUCHER_COLUMNS = [
    Column("Code", "text", 14),
    Column("Plan", "text", 18),
    Column("Price (KES)", "int", 10),
    Column("Valid for", "text", 12),
    Column("Data (MB)", "int", 10),
    Column("Status", "text", 12),
    Column("Issued (EAT)", "datetime", 20),
]

_CSS = {
    "a4": (
        "@page{size:A4;margin:10mm}body{font-family:sans-serif;margin:0}"
        ".cards{display:grid;grid-template-columns:repeat(4,1fr);gap:3mm}"
        ".card{border:1px dashed #999;padding:3mm;break-inside:avoid;text-align:center}"
        ".code{font:bold 15pt monospace;letter-spacing:1px;margin:2mm 0}.small{font-size:8pt}"
    ),
    "58mm": (
        "@page{size:58mm auto;margin:2mm}body{font-family:sans-serif;margin:0;width:54mm}"
        ".card{border-bottom:1px dashed #000;padding:2mm 0 3mm;text-align:center;break-inside:avoid}"
        ".code{font:bold 14pt monospace;letter-spacing:1px;margin:1mm 0}.small{font-size:7pt}"
    ),
}


def sheet(*, provider: str, vouchers: Sequence[Voucher], paper: str, note: str = "") -> str:
    if paper not in _CSS:
        raise ValueError("paper is a4 or 58mm")
    label = provider if "wifi" in provider.lower() else f"{provider} WiFi"
    waiting = sum(1 for v in vouchers if v.status is VoucherStatus.issued)
    warn = (
        f"<p class=small><b>{waiting} of these vouchers are not on the router yet.</b> They work once it has "
        "them; check the router's health before selling them.</p>"
        if waiting
        else ""
    )
    cards = "".join(
        "<div class=card>"
        f"<div>{html.escape(label)}</div><div class=code>{html.escape(v.code)}</div>"
        f"<div>{html.escape(v.plan_name)} · KES {v.price:,}</div>"
        f"<div class=small>Valid {validity_text(v.validity_minutes)} from first login"
        + (f", {v.data_mb:,} MB" if v.data_mb else "")
        + f". {html.escape(note)}</div></div>"
        for v in vouchers
        if v.status in (VoucherStatus.issued, VoucherStatus.provisioned)
    )
    return (
        f"<!doctype html><html><head><meta charset=utf-8><title>{html.escape(provider)} vouchers</title>"
        f"<style>{_CSS[paper]}@media screen{{body{{margin:1em}}}}</style></head>"
        f"<body>{warn}<div class=cards>{cards}</div></body></html>"
    )


async def batch_xlsx(vouchers: Sequence[Voucher], *, directory: str | None) -> tuple[Path, int]:
    async def rows() -> AsyncIterator[Sequence[Sequence[object]]]:
        yield [
            (
                v.code,
                v.plan_name,
                v.price,
                validity_text(v.validity_minutes),
                v.data_mb,
                v.status.value,
                v.issued_at,
            )
            for v in vouchers
        ]

    return await build_xlsx(
        sheet_title="Vouchers", columns=VOUCHER_COLUMNS, batches=rows(), directory=directory
    )
