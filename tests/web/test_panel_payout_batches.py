"""Bulk payouts in the panel, against the Daraja stand-in: an uploaded list is previewed (rows to pay, the
total, a refused row by its number and reason, a duplicate flagged), approved through a dialog that names
what goes, followed to the end and downloaded as .xlsx; a list that runs out of money pauses itself with
its reason and is resumed without paying a row twice; a manager without the owner's grant approves
nothing; another business's batch is not found."""

from __future__ import annotations

import html
import io
import re
import uuid

import httpx
from openpyxl import load_workbook
from sqlalchemy import select

from core.auth.models import Role
from core.payouts.models import BatchStatus, Payout, PayoutBatch, PayoutStatus
from core.runtime import unit_of_work
from tests.conftest import LiveServer
from tests.support.factories import make_tenant, make_user
from tests.support.panel import business_client, csrf_of, rows_of, text_of
from tests.support.payouts import paying_business
from tests.support.waiting import wait_until

LIST = "/app/payouts/batches"
ROWS = 25
FILE = (
    "phone,amount,name,reference\n"
    "0722300101,150,Achieng,November\n"
    "0722300102,200,Baraka,November\n"
    "12345,100,Bad number,November\n"
    "0722300101,150,Achieng again,November\n"
    "0722300103,250,Chebet,November\n"
)


async def upload(panel: httpx.AsyncClient, content: str, *, filename: str = "november.csv") -> httpx.Response:
    page = await panel.get(LIST)
    assert page.status_code == 200, page.text
    return await panel.post(
        LIST,
        data={"command": "salary", "csrf_token": csrf_of(page.text)},
        files={"file": (filename, content.encode(), "text/csv")},
    )


async def batch_row(batch_id: uuid.UUID | str) -> PayoutBatch:
    async with unit_of_work(readonly=True) as session:
        row = await session.get(PayoutBatch, uuid.UUID(str(batch_id)))
        assert row is not None
        return row


async def wait_status(batch_id: uuid.UUID | str, status: BatchStatus) -> None:
    async def reached() -> bool:
        return (await batch_row(batch_id)).status is status

    await wait_until(reached, timeout=60)


async def post(panel: httpx.AsyncClient, page_url: str, action: str, **data: str) -> httpx.Response:
    page = await panel.get(page_url)
    assert page.status_code == 200, page.text
    return await panel.post(action, data={**data, "csrf_token": csrf_of(page.text)})


def dialog_of(page: str, section_id: str) -> str:
    """The confirmation dialog's question of the first form in the section."""
    found = re.search(r'data-confirm="([^"]+)"', page.split(f'id="{section_id}"', 1)[1])
    assert found, f"no confirmation in #{section_id}"
    return html.unescape(found.group(1))


def result_rows(content: bytes) -> list[tuple[object, ...]]:
    sheet = load_workbook(io.BytesIO(content), read_only=True).worksheets[0]
    return [tuple(row) for row in sheet.iter_rows(values_only=True)]


class TestAList:
    async def test_preview_approve_follow_and_download(self, server: LiveServer) -> None:
        pb = await paying_business(server, name="Panel Bulk Duka")
        panel = await business_client(server.url, pb.owner)
        try:
            r = await upload(panel, FILE)
            assert r.status_code == 303, r.text
            url = r.headers["location"]
            assert re.fullmatch(r"/app/payouts/batches/[0-9a-f-]{36}", url)
            batch_id = url.rsplit("/", 1)[1]
            async with unit_of_work(readonly=True) as session:  # nothing is paid before approval
                assert (
                    list(await session.scalars(select(Payout).where(Payout.tenant_id == pb.tenant.id))) == []
                )

            preview = await panel.get(url)
            assert preview.status_code == 200
            assert text_of(preview.text, "preview-rows") == "4"
            assert text_of(preview.text, "preview-total") == "KES 750"
            assert text_of(preview.text, "preview-refused") == "1"
            assert text_of(preview.text, "preview-duplicates") == "1"
            [refused] = rows_of(preview.text, "refused")
            assert refused[:2] == ["4", "phone"] and refused[2]
            assert rows_of(preview.text, "duplicates") == [
                ["5", "Same phone and amount as row 2: left out unless you include duplicates."]
            ]
            assert dialog_of(preview.text, "approve") == (
                "Pay “november.csv” through “Payouts”? Without the 1 flagged duplicates: 3 rows; with "
                "them (if you ticked the box): 4 rows, KES 750 in total. Payouts cannot be undone."
            )

            approved = await post(panel, url, f"{url}/approve")
            assert (approved.status_code, approved.headers["location"]) == (303, f"{url}?done=approved")
            await wait_status(batch_id, BatchStatus.done)
            page = await panel.get(url)
            assert text_of(page.text, "batch-status") == "done"
            assert 'data-poll="' not in page.text.split('id="batch-state"')[1].split(">")[0]  # finished
            assert text_of(page.text, "batch-counts") == (
                "3 of 3 rows done (100%) : paid 3 (KES 600) · failed 0 · waiting 0"
            )
            assert 'id="batch-pause"' not in page.text and 'id="batch-resume"' not in page.text
            assert sorted(row[2] for row in rows_of(page.text, "batch-rows")) == [
                "KES 150",
                "KES 200",
                "KES 250",
            ]
            assert {row[3] for row in rows_of(page.text, "batch-rows")} == {"paid"}
            listed = await panel.get(LIST)
            [summary] = rows_of(listed.text, "batches")
            assert summary[1:6] == ["november.csv", "done", "4", "KES 750", "3 · KES 600"]

            result = await panel.get(f"{url}/result.xlsx")
            assert result.status_code == 200
            assert result.headers["content-disposition"].startswith('attachment; filename="payouts-november-')
            rows = result_rows(result.content)
            assert rows[0][:6] == ("Row", "Phone", "Amount (KES)", "Name", "Reference", "Status")
            assert [(r[0], r[1], r[2], r[5]) for r in rows[1:]] == [
                (2, "254722300101", 150, "success"),
                (3, "254722300102", 200, "success"),
                (4, None, None, "refused"),
                (5, None, None, "left out"),
                (6, "254722300103", 250, "success"),
            ]
            assert all(r[6] for r in rows[1:] if r[5] == "success")  # each with its receipt
        finally:
            await panel.aclose()

    async def test_it_pauses_when_money_runs_out_and_resumes_without_paying_twice(
        self, server: LiveServer
    ) -> None:
        pb = await paying_business(server, name="Panel Short Funds Duka")
        async with httpx.AsyncClient() as sim:
            r = await sim.post(f"{pb.sim}/_sim/balance", json={"shortcode": pb.short_code, "utility": 200})
            assert r.status_code == 200, r.text
        # More rows than go to M-Pesa at once (ten), so rows are still queued when the money runs out.
        rows = "".join(f"07223002{n:02d},100,Worker {n},December\n" for n in range(10, 10 + ROWS))
        panel = await business_client(server.url, pb.owner)
        try:
            url = (await upload(panel, "phone,amount,name,reference\n" + rows)).headers["location"]
            batch_id = url.rsplit("/", 1)[1]
            assert (await post(panel, url, f"{url}/approve")).status_code == 303
            await wait_status(batch_id, BatchStatus.paused)

            async def settled() -> bool:  # the rows already with M-Pesa finish
                async with unit_of_work(readonly=True) as session:
                    found = await session.scalars(
                        select(Payout).where(Payout.batch_id == uuid.UUID(batch_id))
                    )
                    return all(p.status is not PayoutStatus.pending for p in found)

            await wait_until(settled, timeout=30)
            page = await panel.get(url)
            assert text_of(page.text, "batch-status") == "paused"
            assert text_of(page.text, "pause-reason").startswith(
                "Paused. M-Pesa says the B2C account cannot cover row "
            )
            assert text_of(page.text, "batch-paid") == "2"  # what the account held
            failed, waiting = (
                int(text_of(page.text, "batch-failed")),
                int(text_of(page.text, "batch-waiting")),
            )
            assert failed >= 1 and 2 + failed + waiting == ROWS
            assert 'id="batch-resume"' in page.text and 'id="batch-cancel"' in page.text
            assert 'id="batch-pause"' not in page.text
            assert "data-poll" not in page.text.split('id="batch-state"')[1].split(">")[0]  # it stays put

            async with httpx.AsyncClient() as sim:
                await sim.post(
                    f"{pb.sim}/_sim/balance", json={"shortcode": pb.short_code, "utility": 100_000}
                )
            resumed = await post(panel, url, f"{url}/resume")
            assert (resumed.status_code, resumed.headers["location"]) == (303, f"{url}?done=resumed")
            await wait_status(batch_id, BatchStatus.done)
            page = await panel.get(url)
            assert (text_of(page.text, "batch-paid"), text_of(page.text, "batch-failed")) == (str(ROWS), "0")
            result = result_rows((await panel.get(f"{url}/result.xlsx")).content)
            assert [(r[0], r[5]) for r in result[1:]] == [(n, "success") for n in range(2, ROWS + 2)]
            async with unit_of_work(readonly=True) as session:
                paid = list(
                    await session.scalars(select(Payout).where(Payout.batch_id == uuid.UUID(batch_id)))
                )
            assert len(paid) == ROWS and len({p.receipt for p in paid}) == ROWS  # each row paid once
        finally:
            await panel.aclose()

    async def test_a_preview_is_thrown_away_and_a_bad_file_explained(self, server: LiveServer) -> None:
        pb = await paying_business(server, name="Panel Discard Duka")
        panel = await business_client(server.url, pb.owner)
        try:
            bad = await upload(panel, "not a list", filename="list.pdf")
            assert bad.status_code == 422
            assert text_of(bad.text, "batch-file-error") == (
                "Send the list as an Excel file (.xlsx) or a CSV file (.csv)."
            )
            url = (await upload(panel, FILE)).headers["location"]
            gone = await post(panel, url, f"{url}/cancel")
            assert (gone.status_code, gone.headers["location"]) == (303, f"{url}?done=discarded")
            page = await panel.get(gone.headers["location"])
            assert text_of(page.text, "done") == "Preview thrown away: nothing was paid."
            assert text_of(page.text, "batch-status") == "cancelled"
            again = await post(panel, url, f"{url}/approve")
            assert again.status_code == 409
            assert text_of(again.text, "batch-error") == "This batch is cancelled: it cannot be approved."
        finally:
            await panel.aclose()


class TestWhoMay:
    async def test_a_manager_without_the_grant_and_another_business(self, server: LiveServer) -> None:
        pb = await paying_business(server, name="Panel Bulk Staff Duka")
        manager = await make_user(tenant=pb.tenant, role=Role.manager)
        owner = await business_client(server.url, pb.owner)
        staff = await business_client(server.url, manager)
        _, stranger = await make_tenant(name="Panel Bulk Stranger Duka")
        theirs = await business_client(server.url, stranger)
        try:
            url = (await upload(owner, FILE)).headers["location"]
            page = await staff.get(url)
            assert page.status_code == 200  # a manager reads batches
            assert 'id="approve"' not in page.text
            assert text_of(page.text, "approve-who").startswith("The owner, or staff the owner allowed")
            refused = await staff.post(f"{url}/approve", data={"csrf_token": csrf_of(page.text)})
            assert refused.status_code == 403
            assert 'action="/app/payouts/batches"' not in (await staff.get(LIST)).text  # no upload form
            assert (await upload(staff, FILE)).status_code == 403
            assert (await batch_row(url.rsplit("/", 1)[1])).status is BatchStatus.draft

            assert (await theirs.get(url)).status_code == 404
            assert (await theirs.get(f"{url}/progress")).status_code == 404
            assert (await theirs.get(f"{url}/result.xlsx")).status_code == 404
            listed = await theirs.get(LIST)
            assert (
                await theirs.post(f"{url}/approve", data={"csrf_token": csrf_of(listed.text)})
            ).status_code == 404
            assert (await batch_row(url.rsplit("/", 1)[1])).status is BatchStatus.draft
        finally:
            await owner.aclose()
            await staff.aclose()
            await theirs.aclose()
