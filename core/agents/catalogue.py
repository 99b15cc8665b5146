"""Which tools an actor may see and call.

Each tool names the permission of the use case it calls, so a tool is listed only to a key that the
use case would let through: a read-only key lists no tool that writes, and a key without
`payouts:write` never sees the money-out tools. The use case still checks (the list is a courtesy, the
use case the wall). Hotspot tools are listed only to hotspot providers, whose business they are.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.access.actor import Actor
from core.access.permissions import PERMISSION_SCOPE, WRITES, Permission
from core.errors import PermissionDenied
from core.tenants.models import TenantKind


@dataclass(frozen=True, slots=True)
class ToolRule:
    permission: Permission
    money: bool = False  # moves money: two steps, destructive
    kinds: frozenset[TenantKind] | None = None  # None: every kind of business

    @property
    def writes(self) -> bool:
        return self.permission in WRITES


HOTSPOT = frozenset({TenantKind.hotspot})

TOOLS: dict[str, ToolRule] = {
    "request_payment": ToolRule(Permission.payments_request),
    "get_payment": ToolRule(Permission.payments_read),
    "wait_for_payment": ToolRule(Permission.payments_read),
    "list_payments": ToolRule(Permission.payments_read),
    "search_customers": ToolRule(Permission.customers_read),
    "customer_summary": ToolRule(Permission.customers_read),
    "export_customers": ToolRule(Permission.exports),
    "export_transactions": ToolRule(Permission.exports),
    # GET /api/dashboard's use case: the figures with the wallet and commission (wallet:read).
    "get_dashboard": ToolRule(Permission.wallet_read),
    "get_wallet": ToolRule(Permission.wallet_read),
    "get_account_balance": ToolRule(Permission.balance_read),
    "get_payout": ToolRule(Permission.payouts_read),
    "request_payout": ToolRule(Permission.payouts_request, money=True),
    "reverse_payment": ToolRule(Permission.reversals_request, money=True),
    "list_plans": ToolRule(Permission.hotspot_overview, kinds=HOTSPOT),
    "issue_vouchers": ToolRule(Permission.vouchers_issue, kinds=HOTSPOT),
    "voucher_status": ToolRule(Permission.vouchers_read, kinds=HOTSPOT),
}


def visible(actor: Actor, kind: TenantKind) -> frozenset[str]:
    """The tools this actor may list and call, for a business of this kind."""
    return frozenset(
        name
        for name, rule in TOOLS.items()
        if actor.can(rule.permission) and (rule.kinds is None or kind in rule.kinds)
    )


def refusal(actor: Actor, name: str, kind: TenantKind) -> PermissionDenied:
    """Why `name` is not this caller's to call, saying what to do; the same words for a tool that
    does not exist, so a caller learns nothing from guessing names."""
    rule = TOOLS.get(name)
    if rule is None:
        return PermissionDenied(
            f"There is no tool {name!r}: list the tools to see the ones this key may use."
        )
    if rule.kinds is not None and kind not in rule.kinds:
        return PermissionDenied(f"{name} is for WiFi hotspot providers; this business is not one.")
    scope = PERMISSION_SCOPE.get(rule.permission)
    need = f"the {scope.value} scope" if scope is not None else "a permission API keys cannot hold"
    return PermissionDenied(
        f"This API key cannot call {name}: it needs {need}. Create a key with it (panel: Settings → API "
        "keys) and connect with that key."
    )
