"""Every reply the bot writes, in one place (HTML; values escaped)."""

from __future__ import annotations

from html import escape

from core.money import format_cents

WELCOME_STRANGER = (
    "👋 <b>Welcome to lipapush</b>\n"
    "Collect M-Pesa payments straight into your own Till or Paybill, from this chat.\n\n"
    "Are you new here, or do you already have a lipapush account?"
)
ASK_LINK_CODE = (
    "Send me the link code from your lipapush account (POST /api/telegram/link-code, or ask the person "
    "who runs your business on lipapush)."
)
CANCELLED = "Cancelled. Nothing was changed."
NOTHING_TO_CANCEL = "There is nothing to cancel."
UNKNOWN_STRANGER = "I don't know this chat yet. Send /start to create your business or link your account."
UNKNOWN_COMMAND = "I didn't understand that. Use the buttons below, or /help."
HELP = (
    "<b>lipapush</b> commands\n"
    "/start – main menu\n/pay – request a payment\n/transactions – recent payments\n"
    "/customers – your customer book\n/wallet – wallet and commission\n/settings – M-Pesa settings\n"
    "/balance – M-Pesa account balance\n/payout – pay out to an M-Pesa number (owner)\n"
    "/payouts_bulk – pay a list from an Excel or CSV file (owner)\n/payouts – payouts and bulk payouts\n"
    "/apps – your apps (owner)\n/usage – API usage\n/plan – API plan: this month's payment requests\n"
    "/ussd – USSD PIN for a feature phone\n/wifi – WiFi hotspot: sales, routers, printed vouchers\n"
    "/cancel – stop what you are doing"
)
SOMETHING_WRONG = "Something went wrong on our side. Please try again in a moment."

SIGNUP_NAME = "Let's set up your business. What is the <b>business name</b>?"
SIGNUP_EMAIL = "Your <b>email</b> (you log in to the web dashboard with it)?"
SIGNUP_PASSWORD = (
    "Choose a <b>password</b> (at least 8 characters). I delete your message as soon as I read it."
)
SIGNUP_PHONE = (
    "Your <b>M-Pesa phone number</b> (07…, 01… or +254…)? We send a KES 1 test payment to it to check "
    "your Till or Paybill."
)


def created(name: str) -> str:
    return f"🎉 <b>{escape(name)}</b> is created. Now connect your M-Pesa Till or Paybill."


def linked(business: str, role: str) -> str:
    return f"🔗 This chat is now linked to <b>{escape(business)}</b> ({role})."


def menu(business: str, status: str) -> str:
    note = "" if status == "active" else f"\n<i>Status: {status}</i>"
    return f"🏪 <b>{escape(business)}</b>{note}\nWhat would you like to do?"


ONB_ENV = (
    "Which <b>M-Pesa environment</b>?\n• Simulator: try lipapush with test money\n"
    "• Sandbox / Production: your own Daraja app"
)
ONB_KIND = "Is it a <b>Paybill</b> or a <b>Till</b> (Buy Goods)?"
ONB_SHORT_CODE_PAYBILL = "Your <b>Paybill number</b> (5–7 digits)?"
ONB_SHORT_CODE_TILL = (
    "Your <b>Store / Head Office number</b> (the BusinessShortCode Safaricom gave for the till)?"
)
ONB_TILL = "Your <b>Till number</b>?"
ONB_KEY = "Your Daraja <b>Consumer Key</b>? I delete the message as soon as I read it."
ONB_SECRET = "Your Daraja <b>Consumer Secret</b>? I delete the message as soon as I read it."
ONB_PASSKEY = "Your Lipa na M-Pesa <b>Passkey</b>? I delete the message as soon as I read it."
SECRET_DELETED = "🔒 Received and deleted from the chat."


def onb_testing(phone: str) -> str:
    return f"📲 Sending a KES 1 test payment to {phone}. Approve it on the phone to activate your business…"


def onb_failed(reason: str) -> str:
    return f"❌ The test payment did not go through: {escape(reason)}"


PAY_PHONE = "💸 <b>Request payment</b>\nCustomer's phone number? (or pick a recent customer)"
PAY_AMOUNT = "Amount in KES (whole shillings, 1–250 000)?"
PAY_NAME = "Customer name? (optional)"


PAYOUT_CHANNEL = "💸 <b>Pay out</b>\nWhich channel pays it?"
PAYOUT_PHONE = "💸 <b>Pay out</b>\nThe recipient's M-Pesa number? (07…, 01… or +254…)"
PAYOUT_AMOUNT = "Amount in KES? (whole shillings, at least 10)"
PAYOUT_NAME = "Who is it for? (optional: kept with the payout; M-Pesa tells the registered name)"
BULK_ASK = (
    "📦 <b>Bulk payout</b>\nSend the list as an Excel (.xlsx) or CSV file: a first row naming the columns "
    "<b>phone</b> and <b>amount</b> (<b>name</b> and <b>reference</b> optional), then one row a payout.\n"
    "You see a preview first: nothing is paid until you approve it."
)
BULK_NEED_FILE = "Send the list as a file (📎 → File), or /cancel."
BULK_CHANNEL = "📦 Which channel pays this list?"


def home_commission(from_wallet_cents: int, owed_cents: int) -> list[str]:
    """🏠 Home's commission lines: what the wallet paid apart from what is still owed on the invoice
    (hybrid and invoice billing), or an empty wallet looks like it paid."""
    return [
        f"Commission from wallet: {format_cents(from_wallet_cents)}",
        f"Commission owed on invoice: {format_cents(owed_cents)}",
    ]


def pay_sending(phone: str, amount: int) -> str:
    return f"📲 Sending the M-Pesa prompt to {phone} for KES {amount:,}…"


def invalid(message: str) -> str:
    return f"⚠️ {escape(message)}\nTry again, or /cancel."
