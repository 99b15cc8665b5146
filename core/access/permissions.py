"""One vocabulary for what an actor may do, and which roles hold what.

Every front end used to spell these rules its own way (`require_role(Role.owner, Role.manager)`,
`business(viewer, *MANAGERS)`, `_need(actor, Role.owner)`, `ctx.data["role"] in (...)`); this table is
now the only place a role is mapped to what it may do. A permission names an action, not a role, so a
new role or an API key scope is one row here rather than a hunt through handlers.
"""

from __future__ import annotations

from enum import StrEnum

from core.auth.models import Role


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
    # one's own account (password, two-step sign-in, sessions, Telegram link, USSD PIN): every person,
    # never an API key, which acts for a business rather than a person
    account_manage = "account:manage"


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
        Permission.account_manage,
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
    Permission.channel_read,
    Permission.sms_settings,
}
_OWNER = _MANAGER | {
    Permission.wallet_settings,
    Permission.channel_manage,
    Permission.api_keys_manage,
    Permission.staff_manage,
    Permission.subscription_manage,
    Permission.routers_add,
    Permission.subscription_read,
    Permission.staff_list,
    Permission.payment_alerts_manage,
}

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.cashier: _CASHIER,
    Role.manager: frozenset(_MANAGER),
    Role.owner: frozenset(_OWNER),
    Role.platform_admin: frozenset({Permission.platform_admin, Permission.account_manage}),
}

# An API key acts for its business with the owner's rights (the README's promise). Per-key scopes
# (developer platform) will narrow this set per key; the Actor already carries it as data.
API_KEY_PERMISSIONS: frozenset[Permission] = ROLE_PERMISSIONS[Role.owner] - {Permission.account_manage}


def roles_with(permission: Permission) -> list[Role]:
    """Most senior first, as messages name them ("the owner or manager")."""
    return [r for r in (Role.owner, Role.manager, Role.cashier) if permission in ROLE_PERMISSIONS[r]]
