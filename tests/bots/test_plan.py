"""📦 /plan in the bot: the plan, this month's live payment requests against its quota and the day the
count starts again, as GET /api/plan says; the owner pays a chosen plan from the wallet after a
confirmation (the ledger takes exactly the fee) and sees the plans on offer; a manager reads it
without buttons; a cashier is refused; /usage carries the same quota sentence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core.access.actor import Actor, Via
from core.auth.models import Role
from core.billing.periods import EAT
from core.plans import use_cases, use_cases_admin
from core.plans.schemas import PlanIn
from core.plans.service import next_month_start
from core.tenants.models import Environment
from sim.telegram.client import TelegramSimClient
from tests.bots.test_home_wallet_settings import T, has, linked_owner
from tests.bots.test_transactions import join_as_cashier
from tests.conftest import LiveServer
from tests.support.factories import fund_wallet, letters_token, make_user, wallet_state
from tests.web.test_panel_plan import used_this_month

ADMIN = Actor.system(via=Via.cli)


def month_sentence(used: int, quota: int) -> str:
    now = datetime.now(UTC)
    first = next_month_start(now).astimezone(EAT)
    return (
        f"Live payment requests in {now.astimezone(EAT):%B}: {used:,} of {quota:,} ({quota - used:,} left); "
        f"the count starts again on {first:%-d %B %Y}."
    )


async def test_the_owner_reads_and_pays_the_plan(server: LiveServer, tg: TelegramSimClient) -> None:
    tenant, owner = await linked_owner(tg, name="Bot Plan Duka")
    await used_this_month(tenant, 37)
    shown = await tg.ask("/plan", has("API plan of"), timeout=T)
    assert shown.content == (
        f"📦 API plan of Bot Plan Duka\nPlan: Free\n{month_sentence(37, 100)}\n"
        "Test-mode requests never count."
    )
    assert shown.button_texts == ["🔁 Change plan", "⬅ Menu"]

    await tg.press_button("🔁 Change plan")
    offer = await tg.wait_for_bot_message(predicate=has("Plans on offer"), timeout=T)
    assert "• Free: free, live payment requests 100 a month ✓" in offer.content

    code = f"b-{letters_token()}"
    await use_cases_admin.save_plan(
        ADMIN,
        PlanIn(code=code, name=f"Biashara {code}", monthly_fee_cents=150_000, live_pushes_per_month=2000),
    )
    # the button "Move to …" runs the same use case; the offer in a shared test database is long
    person = Actor.for_user(user_id=owner.id, tenant_id=tenant.id, role=Role.owner, via=Via.telegram)
    await use_cases.choose_plan(person, code=code)
    await fund_wallet(tenant, 500_000)
    status = await use_cases.plan_status(person)
    fee = status.next_payment_cents
    assert fee is not None and 0 < fee <= 150_000
    kes = f"KES {fee / 100:,.2f}"

    unpaid = await tg.ask("/plan", has("API plan of"), timeout=T)
    assert f"You chose Biashara {code} (KES 1,500.00 a month): it applies once paid." in unpaid.content
    await tg.press_button(f"💳 Pay {kes} from the wallet")
    asked = await tg.wait_for_bot_message(predicate=has("from the wallet for the"), timeout=T)
    assert asked.content == f"Pay {kes} from the wallet for the Biashara {code} plan?"
    await tg.press_button("✅ Yes, pay")
    paid = await tg.wait_for_bot_message(predicate=has("✅ Paid"), timeout=T)
    last_day = (next_month_start(datetime.now(UTC)) - timedelta(seconds=1)).astimezone(EAT)
    assert paid.content.startswith(
        f"✅ Paid {kes} from the wallet: the Biashara {code} plan applies through {last_day:%-d %B %Y}.\n\n"
        f"📦 API plan of Bot Plan Duka\nPlan: Biashara {code}\n"
        f"KES 1,500.00 a month, paid through {last_day:%-d %B %Y}.\n{month_sentence(37, 2000)}"
    )
    balance, _ = await wallet_state(tenant)
    assert balance == 500_000 - fee

    usage = await tg.ask("/usage", has("API usage of"), timeout=T)
    assert f"📦 Biashara {code} plan. {month_sentence(37, 2000)} /plan" in usage.content


async def test_a_manager_reads_a_cashier_is_refused(server: LiveServer, tg: TelegramSimClient) -> None:
    tenant, owner = await linked_owner(tg, name="Plan Roles Duka", environment=Environment.simulator)
    await make_user(tenant=tenant, role=Role.manager)
    await join_as_cashier(tg, tenant, owner.id)
    refused = await tg.ask("/plan", has("⚠️"), timeout=T)
    assert refused.content == "⚠️ This is for the owner or manager of Plan Roles Duka.\nTry again, or /cancel."
