"""The start, linking, wizard and request-payment flows: every button and prompt, exact replies."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx

from core.access.actor import Actor, Via
from core.auth.codes import CodePurpose, issue_code
from core.auth.models import Role
from core.billing.periods import EAT
from core.payments.use_cases import request_payment
from core.plans import use_cases_admin
from core.plans.schemas import PlanIn
from core.plans.service import next_month_start
from core.runtime import unit_of_work
from core.tenants.models import TenantStatus
from core.tenants.service import tenants
from sim.telegram.client import TelegramSimClient
from tests.bots.test_conversations import T, activate_simulator_channel, has, signup_in_chat
from tests.bots.test_home_wallet_settings import linked_owner as linked_pair
from tests.conftest import LiveServer
from tests.support.factories import letters_token, make_tenant


async def linked_owner(tg: TelegramSimClient, **kw: object) -> object:
    """A business made by the factories, its owner's chat linked through a real link code."""
    tenant, owner = await make_tenant(**kw)  # type: ignore[arg-type]
    async with unit_of_work() as session:
        code, _ = await issue_code(
            session, purpose=CodePurpose.telegram_link, tenant_id=tenant.id, user_id=owner.id
        )
    await tg.ask(f"/start {code}", has("What would you like to do?"), timeout=T)
    return tenant


class TestLinking:
    async def test_link_button_asks_for_a_code_and_rejects_a_bad_one(
        self, server: LiveServer, tg: TelegramSimClient
    ) -> None:
        await tg.ask("/start", has("Welcome"), timeout=T)
        await tg.press_button("🔗 Link an existing account")
        ask = await tg.wait_for_bot_message(predicate=has("link code"), timeout=T)
        assert ask.content.startswith("Send me the link code from your lipapush account")
        assert ask.button_texts == ["✖ Cancel"]
        bad = await tg.ask("not-a-code", has("⚠️"), timeout=T)
        assert bad.content == (
            "⚠️ This code is not valid: it may have expired or been used. Ask for a new one.\n"
            "Try again, or /cancel."
        )
        await tg.press_button("✖ Cancel")
        done = await tg.wait_for_bot_message(predicate=has("Cancelled"), timeout=T)
        assert done.content == "Cancelled. Nothing was changed."

    async def test_start_for_a_known_chat_shows_the_menu(
        self, server: LiveServer, tg: TelegramSimClient
    ) -> None:
        await linked_owner(tg, name="Menu Shop")
        menu = await tg.ask("/start", has("What would you like to do?"), timeout=T)
        assert menu.content == "🏪 Menu Shop\nWhat would you like to do?"
        assert (await tg.ask("/help", has("commands"), timeout=T)).content.startswith(
            "lipapush commands\n/start – main menu"
        )
        other = await tg.ask("blah", has("didn't understand"), timeout=T)
        assert other.content == "I didn't understand that. Use the buttons below, or /help."


class TestPayFlow:
    async def test_validation_at_each_step(self, server: LiveServer, tg: TelegramSimClient) -> None:
        await linked_owner(tg, name="Validate Shop")
        await tg.ask("/pay", has("Customer's phone number?"), timeout=T)
        bad_phone = await tg.ask("12345", has("⚠️"), timeout=T)
        assert bad_phone.content.startswith("⚠️ '12345' is not a Kenyan mobile number. Use one of: 07XXXXXXXX")
        await tg.ask("0722000111", has("Amount in KES"), timeout=T)
        for text, message in (
            ("1.5", "⚠️ M-Pesa only takes whole shillings: send an amount without cents, like 150."),
            ("0", "⚠️ Amount must be at least KES 1."),
            ("abc", "⚠️ Amount must be a whole number of shillings, like 150."),
            ("250001", "⚠️ Amount must be at most KES 250,000 (the M-Pesa per-payment limit)."),
        ):
            reply = await tg.ask(text, has("⚠️"), timeout=T)
            assert reply.content == message + "\nTry again, or /cancel.", text
        await tg.ask("1,000", has("Customer name?"), timeout=T)
        long_name = await tg.ask("x" * 101, has("⚠️"), timeout=T)
        assert long_name.content == "⚠️ Customer name must be at most 100 characters.\nTry again, or /cancel."
        paid = await tg.ask("Otieno", has("Paid"), timeout=20)
        assert paid.content.startswith("✅ Paid: KES 1,000 from Otieno (0722000111).")

    async def test_known_customer_button_skips_the_name(
        self, server: LiveServer, tg: TelegramSimClient
    ) -> None:
        await linked_owner(tg, name="Repeat Shop")
        await tg.ask("/pay", has("phone number"), timeout=T)
        await tg.ask("0722000222", has("Amount"), timeout=T)
        await tg.ask("60", has("Customer name?"), timeout=T)
        await tg.ask("Achieng", has("Paid"), timeout=20)
        await tg.ask("/pay", has("phone number"), timeout=T)
        await tg.press_button("Achieng · 0722000222")
        asked = await tg.wait_for_bot_message(predicate=has("Customer: Achieng"), timeout=T)
        assert asked.content == "Customer: Achieng (0722000222)\nAmount in KES (whole shillings, 1–250 000)?"
        second = await tg.ask("70", has("KES 70"), timeout=20)
        assert "Achieng (0722000222)" in second.content

    async def test_the_monthly_quota_is_one_plain_sentence(
        self, server: LiveServer, tg: TelegramSimClient
    ) -> None:
        tenant = await linked_owner(tg, name="Quota Shop")
        code = f"z-{letters_token()}"
        admin = Actor.system(via=Via.cli)
        await use_cases_admin.save_plan(
            admin, PlanIn(code=code, name="Zero", monthly_fee_cents=0, live_pushes_per_month=0)
        )
        await use_cases_admin.assign_plan(admin, tenant.id, code=code)  # type: ignore[attr-defined]
        await tg.ask("/pay", has("phone number"), timeout=T)
        await tg.ask("0722000111", has("Amount"), timeout=T)
        await tg.ask("50", has("Customer name?"), timeout=T)
        refused = await tg.ask("Juma", has("⚠️"), timeout=T)
        month = datetime.now(UTC).astimezone(EAT)
        first = next_month_start(datetime.now(UTC)).astimezone(EAT)
        assert refused.content.startswith(
            f"⚠️ This business has used its 0 live payment requests for {month:%B %Y} on the Zero plan; the "
            f"count starts again on {first:%-d %B} at 00:00 (Nairobi). Move to a bigger plan "
            "(Settings → Plan, or POST /api/plan) to push more."
        )

    async def test_the_phone_limit_is_one_plain_sentence_too(
        self, server: LiveServer, tg: TelegramSimClient
    ) -> None:
        """Over-rate as over-quota: the business prompted one phone 5 times this minute (the limit is the
        business's, whoever asks), so the owner's sixth from the bot is refused in one sentence."""
        tenant, owner = await linked_pair(tg, name="Rate Shop")
        person = Actor.for_user(user_id=owner.id, tenant_id=tenant.id, role=Role.owner, via=Via.api)
        for _ in range(5):
            await request_payment(person, phone="254722500111", amount=10)
        await tg.ask("/pay", has("phone number"), timeout=T)
        await tg.ask("0722500111", has("Amount"), timeout=T)
        await tg.ask("50", has("Customer name?"), timeout=T)
        refused = await tg.ask("Juma", has("⚠️"), timeout=T)
        assert refused.content.startswith(
            "⚠️ 2547****0111 has had 5 payment prompts from this business in the last minute, the most one "
            "phone may get. Try again in "
        )

    async def test_suspended_business_is_told_why(self, server: LiveServer, tg: TelegramSimClient) -> None:
        tenant = await linked_owner(tg, name="Held Shop")
        async with unit_of_work() as session:
            row = await tenants.get(session, tenant.id)  # type: ignore[attr-defined]
            row.status, row.status_reason = TenantStatus.suspended, "unpaid fees"
        await tg.ask("/pay", has("phone number"), timeout=T)
        await tg.ask("0722000111", has("Amount"), timeout=T)
        await tg.ask("50", has("Customer name?"), timeout=T)
        refused = await tg.ask("Juma", has("⚠️"), timeout=T)
        assert refused.content == (
            "⚠️ This business is suspended: unpaid fees. Contact lipapush support.\nTry again, or /cancel."
        )

    async def test_a_stranger_cannot_request_payments(
        self, server: LiveServer, tg: TelegramSimClient
    ) -> None:
        reply = await tg.ask("/pay", has("⚠️"), timeout=T)
        assert reply.content.startswith("⚠️ I don't know this chat yet.")


class TestWizardAgain:
    async def test_wrong_pin_on_the_test_push_offers_a_retry(
        self, server: LiveServer, tg: TelegramSimClient
    ) -> None:
        await signup_in_chat(tg, name="Pin Shop", phone="0712342001")
        await tg.press_button("🧪 Simulator (test money)")
        await tg.wait_for_bot_message(predicate=has("Is it a Paybill or a Till"), timeout=T)
        await tg.press_button("Paybill")
        failed = await tg.wait_for_bot_message(predicate=has("did not go through"), timeout=T)
        assert failed.content == (
            "❌ The test payment did not go through: The customer entered a wrong M-Pesa PIN.\n"
            "Check the phone and try again."
        )
        assert failed.button_texts == ["🔁 Retry the test"]

    async def test_simulator_activation_via_api_business_and_linked_chat(
        self, server: LiveServer, tg: TelegramSimClient
    ) -> None:
        await signup_in_chat(tg, name="Quick Shop")
        active = await activate_simulator_channel(tg)
        assert (
            active.content
            == "✅ Test payment received. Your business is active: you can request payments now."
        )
        async with httpx.AsyncClient(base_url=server.url) as http:
            assert (await http.get("/healthz")).status_code == 200


class TestCommandsLeaveFlows:
    async def test_a_command_mid_flow_is_obeyed_not_read_as_input(
        self, server: LiveServer, tg: TelegramSimClient
    ) -> None:
        await linked_owner(tg, name="Flow Shop")
        await tg.ask("/pay", has("phone number"), timeout=T)
        await tg.ask("0722000111", has("Amount in KES"), timeout=T)
        help_ = await tg.ask("/help", timeout=T)
        assert help_.content.startswith("lipapush commands")
        stray = await tg.ask("150", timeout=T)
        assert stray.content == "I didn't understand that. Use the buttons below, or /help."


class TestRemainingButtons:
    async def test_menu_command_and_retry_the_test_button(
        self, server: LiveServer, tg: TelegramSimClient
    ) -> None:
        await signup_in_chat(tg, name="Retry Shop", phone="0712341032")  # the simulator cancels the test
        await tg.press_button("Sandbox")
        kind = await tg.wait_for_bot_message(predicate=has("Is it a Paybill or a Till"), timeout=T)
        assert kind.button_texts == ["Paybill", "Till (Buy Goods)", "✖ Cancel"]
        await tg.press_button("✖ Cancel")
        cancelled = await tg.wait_for_bot_message(predicate=has("Cancelled"), timeout=T)
        assert cancelled.content == "Cancelled. Nothing was changed."
        menu = await tg.ask("/menu", has("What would you like to do?"), timeout=T)
        assert menu.content == "🏪 Retry Shop\nStatus: onboarding\nWhat would you like to do?"
        await tg.press_button("⚙️ Settings")
        settings = await tg.wait_for_bot_message(predicate=has("Settings"), timeout=T, after=menu.message_id)
        await tg.press_button("🔑 Replace M-Pesa credentials")
        await tg.wait_for_bot_message(
            predicate=has("Which M-Pesa environment"), timeout=T, after=settings.message_id
        )
        await tg.press_button("🧪 Simulator (test money)")
        await tg.wait_for_bot_message(predicate=has("Is it a Paybill or a Till"), timeout=T)
        await tg.press_button("Paybill")
        failed = await tg.wait_for_bot_message(predicate=has("did not go through"), timeout=T)
        assert failed.content == (
            "❌ The test payment did not go through: The customer cancelled the M-Pesa prompt.\n"
            "Check the phone and try again."
        )
        await tg.press_button("🔁 Retry the test")
        again = await tg.wait_for_bot_message(
            predicate=lambda m: "did not go through" in m.content and m.message_id > failed.message_id,
            timeout=T,
        )
        assert again.button_texts == ["🔁 Retry the test"]
