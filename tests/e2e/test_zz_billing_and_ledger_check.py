"""Commission through the real entry points, and — last in the e2e run — `lipapush ledger check`
over everything the whole e2e session did."""

from __future__ import annotations

import httpx

from tests.e2e.conftest import NewBusiness, Serve, push, run_cli, unique_phone, wait_final


async def test_commission_via_cli_and_api(
    serve: Serve, http: httpx.AsyncClient, new_business: NewBusiness
) -> None:
    biz = await new_business(name="Wallet Traders", live=True)  # only live payments earn commission
    r = await run_cli(serve, "commission", "set", "--tenant", biz.email, "--percent", "2")
    assert r.returncode == 0, r.output
    assert "Wallet Traders now pays 2% commission" in r.stdout
    r = await run_cli(
        serve, "wallet", "adjust", "--tenant", biz.email, "--amount", "10", "--reason", "opening credit"
    )
    assert r.returncode == 0, r.output
    assert "wallet is now KES 10.00" in r.stdout
    w = (await http.get("/api/wallet", headers=biz.headers)).json()
    assert (w["balance_cents"], w["commission_bps"], w["billing_mode"]) == (1_000, 200, "hybrid")

    payment = await push(http, biz, phone=unique_phone("4321"), amount=275)
    final = await wait_final(http, biz, payment["id"])
    assert final["status"] == "success"
    w = (await http.get("/api/wallet", headers=biz.headers)).json()
    # 275 × 2 % = 5.50, taken from the wallet (hybrid: wallet first)
    assert (w["balance_cents"], w["month_to_date_commission_cents"], w["owed_on_invoice_cents"]) == (
        450,
        550,
        0,
    )
    ledger = (await http.get("/api/wallet/ledger", headers=biz.headers)).json()["items"]
    assert [(p["kind"], p["wallet_effect_cents"]) for p in ledger] == [
        ("commission.wallet", -550),
        ("adjustment.credit", 1_000),
    ]
    d = (await http.get("/api/dashboard", headers=biz.headers)).json()
    assert (
        d["commission_deducted_cents"],
        d["commission_from_wallet_cents"],
        d["commission_owed_cents"],
        d["wallet_balance_cents"],
    ) == (550, 550, 0, 450)
    # another 5.50: the KES 4.50 left in the wallet covers what it can, KES 1 goes on the invoice
    second = await push(http, biz, phone=unique_phone("4322"), amount=275)
    assert (await wait_final(http, biz, second["id"]))["status"] == "success"
    d = (await http.get("/api/dashboard", headers=biz.headers)).json()
    assert (
        d["commission_deducted_cents"],
        d["commission_from_wallet_cents"],
        d["commission_owed_cents"],
        d["wallet_balance_cents"],
    ) == (1_100, 1_000, 100, 0)

    bad = await run_cli(serve, "commission", "set", "--tenant", biz.email, "--percent", "1.234")
    assert bad.returncode == 1 and "at most two decimals" in bad.stderr


async def test_ledger_check_after_the_whole_run(serve: Serve) -> None:
    r = await run_cli(serve, "ledger", "check")
    assert r.returncode == 0, r.output
    assert "ledger balanced" in r.stdout
