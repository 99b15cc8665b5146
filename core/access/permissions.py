"""One vocabulary for what an actor may do, and which roles hold what.

Every front end used to spell these rules its own way (`require_role(Role.owner, Role.manager)`,
`business(viewer, *MANAGERS)`, `_need(actor, Role.owner)`, `ctx.data["role"] in (...)`); this table is
now the only place a role is mapped to what it may do. A permission names an action, not a role, so a
new role or an API key scope is one row here rather than a hunt through handlers.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from core.auth.models import Role
from core.errors import InvalidInput


class Permission(StrEnum):
    # collecting
    payments_request = "payments:request"
    # a cashier reads only the payments they started (Actor.own_payments_only)
    payments_read = "payments:read"
    customers_read = "customers:read"
    dashboard_read = "dashboard:read"
    exports = "exports"
    # money
    wallet_read = "wallet:read"
    wallet_topup = "wallet:topup"
    wallet_settings = "wallet:settings"
    invoices_read = "invoices:read"
    # the business itself
    channel_manage = "channel:manage"
    api_keys_read = "api_keys:read"
    api_keys_manage = "api_keys:manage"
    staff_read = "staff:read"
    staff_manage = "staff:manage"
    alerts_manage = "alerts:manage"  # one's own notification preferences
    # WiFi hotspots
    hotspot_read = "hotspot:read"
    hotspot_manage = "hotspot:manage"  # routers, plans
    vouchers_read = "vouchers:read"  # batches, their printable sheets and exports
    vouchers_issue = "vouchers:issue"  # batches, revoke, resend
    subscription_manage = "subscription:manage"
    # the platform
    platform_admin = "platform:admin"
    # WiFi hotspots, continued: the owner's and manager's reads (sales, routers and their health, plans,
    # setup scripts), the owner's routers and the owner's view of subscription orders
    hotspot_overview = "hotspot:overview"
    routers_add = "routers:add"
    subscription_read = "subscription:read"
    # the business's settings and people (core/tenants/use_cases.py, core/auth/use_cases.py)
    channel_read = "channel:read"  # the M-Pesa channel, secrets masked
    staff_list = "staff:list"  # who works here, with their emails: the owner's
    sms_settings = "settings:sms"  # customer receipt SMS
    payment_alerts_manage = "alerts:payments"  # whether the owner's chat hears of API/USSD payments
    # the API plan (core/plans): read it and this month's quota; choose and pay one (owner)
    plan_read = "plan:read"
    plan_manage = "plan:manage"
    # one's own account (password, two-step sign-in, sessions, Telegram link, USSD PIN): every person,
    # never an API key, which acts for a business rather than a person
    account_manage = "account:manage"
    # the business's own system: webhook endpoints (developer platform)
    webhooks_manage = "webhooks:manage"
    apps_manage = "apps:manage"  # create, rename, archive apps and set their callback hosts (owner)
    usage_read = "usage:read"  # API usage figures, the request log and its export (core/usage)
    # Money out (core/payouts, core/lookups, core/reversals). Paying out is the owner's; a manager or
    # cashier pays out only once the owner grants it to them (users.may_pay_out, checked by the use
    # case). A reversal is the owner's alone, behind a second factor.
    payouts_request = "payouts:request"
    payouts_read = "payouts:read"
    balance_read = "balance:read"  # the business's M-Pesa account balance
    transactions_lookup = "transactions:lookup"  # ask M-Pesa the status of a receipt
    reversals_request = "reversals:request"
    # The business's activity log (core/audit/use_cases.py): who did what, by person and by API key,
    # including AI agents' tool calls through the MCP server. The owner's; read-only.
    audit_read = "audit:read"


# Permissions that change something: an impersonating admin in read-only mode holds none of them.
WRITES: frozenset[Permission] = frozenset(
    {
        Permission.payments_request,
        Permission.wallet_topup,
        Permission.wallet_settings,
        Permission.channel_manage,
        Permission.api_keys_manage,
        Permission.staff_manage,
        Permission.alerts_manage,
        Permission.hotspot_manage,
        Permission.vouchers_issue,
        Permission.subscription_manage,
        Permission.routers_add,
        Permission.sms_settings,
        Permission.payment_alerts_manage,
        Permission.plan_manage,
        Permission.account_manage,
        Permission.webhooks_manage,
        Permission.apps_manage,
        Permission.payouts_request,
        Permission.transactions_lookup,
        Permission.reversals_request,
    }
)

_CASHIER = frozenset(
    {
        Permission.payments_request,
        Permission.payments_read,
        Permission.dashboard_read,
        Permission.alerts_manage,
        Permission.hotspot_read,
        Permission.account_manage,
    }
)
_MANAGER = _CASHIER | {
    Permission.customers_read,
    Permission.exports,
    Permission.wallet_read,
    Permission.wallet_topup,
    Permission.invoices_read,
    Permission.staff_read,
    Permission.api_keys_read,
    Permission.vouchers_read,
    Permission.vouchers_issue,
    Permission.hotspot_manage,
    Permission.hotspot_overview,
    Permission.plan_read,
    Permission.channel_read,
    Permission.sms_settings,
    Permission.usage_read,
    Permission.payouts_read,
    Permission.balance_read,
    Permission.transactions_lookup,
}
_OWNER = _MANAGER | {
    Permission.wallet_settings,
    Permission.plan_manage,
    Permission.channel_manage,
    Permission.api_keys_manage,
    Permission.staff_manage,
    Permission.subscription_manage,
    Permission.routers_add,
    Permission.subscription_read,
    Permission.staff_list,
    Permission.payment_alerts_manage,
    Permission.webhooks_manage,
    Permission.apps_manage,
    Permission.payouts_request,
    Permission.reversals_request,
    Permission.audit_read,
}

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.cashier: _CASHIER,
    Role.manager: frozenset(_MANAGER),
    Role.owner: frozenset(_OWNER),
    Role.platform_admin: frozenset({Permission.platform_admin, Permission.account_manage}),
}

# An API key acts for its business, never for a person: at most the owner's rights without their own
# account. Each key holds scopes (below), and its actor holds only what they grant.
API_KEY_PERMISSIONS: frozenset[Permission] = ROLE_PERMISSIONS[Role.owner] - {Permission.account_manage}


class ApiScope(StrEnum):
    """What one API key may do, chosen when it is created. A scope names a resource an integration
    works with, not a role, so a key (and later an app's key) gets only what its system needs; a write
    scope includes its read scope."""

    payments_read = "payments:read"
    payments_write = "payments:write"  # STK pushes, and asking M-Pesa a receipt's status
    customers_read = "customers:read"
    exports = "exports"
    webhooks = "webhooks"
    dashboard_read = "dashboard:read"
    wallet_read = "wallet:read"  # balance, statement, invoices
    wallet_write = "wallet:write"  # top-ups, the low-balance alert
    hotspot_read = "hotspot:read"  # routers, plans, sales, vouchers, the subscription
    hotspot_write = "hotspot:write"
    business_read = "business:read"  # the M-Pesa channel (masked), staff
    business_write = "business:write"  # the channel, staff, receipt SMS, alerts
    keys_read = "keys:read"
    keys_write = "keys:write"  # create, roll and revoke keys (never beyond the key's own scopes)
    payouts_read = "payouts:read"  # payouts, batches, the M-Pesa balance
    payouts_write = "payouts:write"  # pay out, approve batches, reverse a payment


# Where each permission a key can hold lives: exactly one scope each (a test holds every permission in
# API_KEY_PERMISSIONS to one), and the scope a refusal names.
PERMISSION_SCOPE: dict[Permission, ApiScope] = {
    Permission.payments_read: ApiScope.payments_read,
    Permission.payments_request: ApiScope.payments_write,
    Permission.customers_read: ApiScope.customers_read,
    Permission.exports: ApiScope.exports,
    Permission.webhooks_manage: ApiScope.webhooks,
    Permission.dashboard_read: ApiScope.dashboard_read,
    Permission.wallet_read: ApiScope.wallet_read,
    Permission.invoices_read: ApiScope.wallet_read,
    Permission.wallet_topup: ApiScope.wallet_write,
    Permission.wallet_settings: ApiScope.wallet_write,
    Permission.hotspot_read: ApiScope.hotspot_read,
    Permission.hotspot_overview: ApiScope.hotspot_read,
    Permission.vouchers_read: ApiScope.hotspot_read,
    Permission.subscription_read: ApiScope.hotspot_read,
    Permission.hotspot_manage: ApiScope.hotspot_write,
    Permission.routers_add: ApiScope.hotspot_write,
    Permission.vouchers_issue: ApiScope.hotspot_write,
    Permission.subscription_manage: ApiScope.hotspot_write,
    Permission.channel_read: ApiScope.business_read,
    Permission.plan_read: ApiScope.business_read,
    Permission.plan_manage: ApiScope.business_write,
    Permission.staff_read: ApiScope.business_read,
    Permission.staff_list: ApiScope.business_read,
    Permission.channel_manage: ApiScope.business_write,
    Permission.staff_manage: ApiScope.business_write,
    Permission.sms_settings: ApiScope.business_write,
    Permission.payment_alerts_manage: ApiScope.business_write,
    Permission.alerts_manage: ApiScope.business_write,
    Permission.api_keys_read: ApiScope.keys_read,
    Permission.api_keys_manage: ApiScope.keys_write,
    Permission.apps_manage: ApiScope.keys_write,
    Permission.usage_read: ApiScope.keys_read,
    Permission.payouts_read: ApiScope.payouts_read,
    Permission.balance_read: ApiScope.payouts_read,
    Permission.transactions_lookup: ApiScope.payments_write,
    Permission.payouts_request: ApiScope.payouts_write,
    Permission.reversals_request: ApiScope.payouts_write,
    Permission.audit_read: ApiScope.business_read,
}

# A write scope includes its read scope: a system that pushes payments reads their status.
SCOPE_INCLUDES: dict[ApiScope, ApiScope] = {
    ApiScope.payments_write: ApiScope.payments_read,
    ApiScope.wallet_write: ApiScope.wallet_read,
    ApiScope.hotspot_write: ApiScope.hotspot_read,
    ApiScope.business_write: ApiScope.business_read,
    ApiScope.keys_write: ApiScope.keys_read,
    ApiScope.payouts_write: ApiScope.payouts_read,
}

ALL_SCOPES: frozenset[ApiScope] = frozenset(ApiScope)
# Money leaves the business only through a key that was given it on purpose.
MONEY_OUT_SCOPES: frozenset[ApiScope] = frozenset({ApiScope.payouts_read, ApiScope.payouts_write})
# What a key gets when none are chosen: everything a key could do before money out existed.
DEFAULT_SCOPES: frozenset[ApiScope] = ALL_SCOPES - MONEY_OUT_SCOPES

SCOPE_PERMISSIONS: dict[ApiScope, frozenset[Permission]] = {
    scope: frozenset(
        p for p, home in PERMISSION_SCOPE.items() if home is scope or SCOPE_INCLUDES.get(scope) is home
    )
    for scope in ApiScope
}


def scope_permissions(scopes: Iterable[ApiScope]) -> frozenset[Permission]:
    """What a key holding `scopes` may do."""
    return frozenset().union(*(SCOPE_PERMISSIONS[s] for s in scopes))


def parse_scopes(values: Iterable[str] | None, *, field: str = "scopes") -> frozenset[ApiScope]:
    """A key's scopes from what a person or client typed; None (not given) is every scope but money
    out's (DEFAULT_SCOPES), so a key made without choosing works as keys always did and pays nothing
    out. Unknown names are refused with the valid ones."""
    if values is None:
        return DEFAULT_SCOPES
    chosen: set[ApiScope] = set()
    unknown: list[str] = []
    for value in values:
        name = value.strip().lower()
        try:
            chosen.add(ApiScope(name))
        except ValueError:
            unknown.append(value)
    if unknown:
        named = ", ".join(repr(u[:40]) for u in unknown[:5])
        raise InvalidInput(
            field,
            f"Unknown scope {named}. Valid scopes: {', '.join(s.value for s in ApiScope)}.",
        )
    if not chosen:
        raise InvalidInput(field, f"Choose at least one scope: {', '.join(s.value for s in ApiScope)}.")
    return frozenset(chosen)


def sorted_scopes(scopes: Iterable[ApiScope | str]) -> list[str]:
    """In the vocabulary's order, as lists and the API show them."""
    order = {s.value: i for i, s in enumerate(ApiScope)}
    return sorted({str(s) for s in scopes}, key=lambda s: order.get(s, len(order)))


def roles_with(permission: Permission) -> list[Role]:
    """Most senior first, as messages name them ("the owner or manager")."""
    return [r for r in (Role.owner, Role.manager, Role.cashier) if permission in ROLE_PERMISSIONS[r]]
