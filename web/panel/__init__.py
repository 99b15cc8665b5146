"""The web panel: /admin for platform admins, /app for businesses, /login. Server-rendered (Jinja2),
no CDN: the CSS and the few lines of JS are served from web/panel/static."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles

from web.panel import (
    admin_exports,
    admin_logs,
    admin_money,
    admin_payments,
    admin_plans,
    admin_tenants,
    admin_usage,
    app_apps,
    app_balance,
    app_business,
    app_customers,
    app_money,
    app_pay,
    app_payout_batches,
    app_payouts,
    app_reversals,
    app_settings,
    app_settings_account,
    app_settings_activity,
    app_settings_channels,
    app_settings_keys,
    app_settings_payout_channels,
    app_settings_plan,
    app_settings_staff,
    app_settings_usage,
    app_settings_webhooks,
    app_wifi,
    app_wifi_plans,
    app_wifi_routers,
    app_wifi_vouchers,
    auth_routes,
    home,
    impersonation,
    join,
    password_reset,
)

STATIC = Path(__file__).parent / "static"


def install_panel(app: FastAPI) -> None:
    router = APIRouter(include_in_schema=False)
    for module in (
        auth_routes,
        home,
        impersonation,
        admin_tenants,
        admin_payments,
        admin_logs,
        admin_money,
        admin_exports,
        admin_plans,
        admin_usage,
        app_business,
        app_pay,
        app_reversals,
        # money out: the batches' and balance's fixed paths before a payout's id (also kept apart by
        # the :uuid converter)
        app_payout_batches,
        app_balance,
        app_payouts,
        app_settings,
        app_settings_channels,
        app_settings_payout_channels,
        app_settings_plan,
        app_settings_keys,
        app_apps,
        app_settings_staff,
        app_settings_webhooks,
        app_settings_usage,
        app_settings_activity,
        app_settings_account,
        app_wifi,
        app_wifi_plans,
        app_wifi_vouchers,
        app_wifi_routers,
        app_money,
        app_customers,
        join,
        password_reset,
    ):
        router.include_router(module.router)
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
