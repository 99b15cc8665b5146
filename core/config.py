"""Settings from the environment (and `.env`), named exactly as DESIGN lists them.

A missing or malformed variable stops the process at start with a message that names it; see
`load_settings`.
"""

from __future__ import annotations

import os
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Annotated

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Public values of the Daraja sandbox (refs/daraja.md §0): used only to fill `simulator` channels.
SANDBOX_PASSKEY = "bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c919"
SANDBOX_SHORT_CODE = "174379"

# Development-only key: refused outside APP_ENV=development so a real deployment cannot run on it.
_DEV_FERNET_KEY = "bGlwYXB1c2gtZGV2ZWxvcG1lbnQta2V5LW5vdC1zZWM="
_DEV_SECRET = "lipapush-development-secret-change-me-0000"


def data_dir() -> Path:
    """Where lipapush keeps its own files: the embedded database and the running server's address.

    One fixed place, not the working directory, so every command finds the same database wherever
    it is run from. `$LIPAPUSH_HOME`, else `$XDG_DATA_HOME/lipapush`, else `~/.local/share/lipapush`.
    Only named here; whoever writes into it creates it.
    """
    if home := os.environ.get("LIPAPUSH_HOME"):
        return Path(home).expanduser().resolve()
    xdg = os.environ.get("XDG_DATA_HOME", "")
    # The XDG spec says to ignore a relative XDG_DATA_HOME.
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "share"
    return base / "lipapush"


def default_database_url() -> str:
    return f"sqlite+aiosqlite:///{data_dir() / 'lipapush.db'}"


class AppEnv(StrEnum):
    development = "development"
    production = "production"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=True)

    APP_ENV: AppEnv = AppEnv.development
    DATABASE_URL: str = Field(default_factory=default_database_url)
    # Postgres: the schema owner's URL, used only by `lipapush db upgrade` (and serve's first-run
    # migration), which also creates DATABASE_URL's role (a plain role: row-level security binds it)
    # and grants it the tables. Unset: migrations run as DATABASE_URL's role.
    MIGRATION_DATABASE_URL: str | None = None
    # Size the pool for the concurrency one process serves; pre-ping costs a round trip per checkout,
    # and a dropped connection is detected on use anyway (the pool is then invalidated and refilled).
    DB_POOL_SIZE: int = Field(default=20, ge=1, le=200)
    DB_MAX_OVERFLOW: int = Field(default=10, ge=0, le=200)
    DB_POOL_PRE_PING: bool = False
    REDIS_URL: str | None = None
    # Keys and queues live under this prefix, so several deployments (or test runs) can share a Redis.
    REDIS_NAMESPACE: str = Field(default="lipapush", pattern=r"^[A-Za-z0-9_\-:.]{1,64}$")
    ENCRYPTION_KEYS: Annotated[list[str], NoDecode] = Field(default_factory=lambda: [_DEV_FERNET_KEY])
    SECRET_KEY: str = _DEV_SECRET
    ACCESS_TOKEN_MINUTES: int = Field(default=60, ge=1, le=24 * 60)
    # Wrong passwords count per account *and network* and per network, never per account alone, so
    # nobody can lock an owner out from elsewhere (core/auth/login_limits.py). Past either limit that
    # network's sign-ins answer 429 until the window that began at its first failure ends; a browser
    # that signed in to the account before counts its own failures apart (LOGIN_MAX_FAILURES_PER_
    # ACCOUNT_NETWORK of them) and is never stopped by anyone else's.
    LOGIN_FAILURE_WINDOW_MINUTES: int = Field(default=15, ge=1, le=24 * 60)
    LOGIN_MAX_FAILURES_PER_ACCOUNT_NETWORK: int = Field(default=10, ge=1, le=1000)
    LOGIN_MAX_FAILURES_PER_NETWORK: int = Field(default=50, ge=1, le=100_000)
    # How long the panel remembers a browser as a known device after its last sign-in.
    LOGIN_KNOWN_DEVICE_DAYS: int = Field(default=180, ge=1, le=3650)
    PUBLIC_BASE_URL: str | None = None
    DARAJA_SANDBOX_URL: str = "https://sandbox.safaricom.co.ke"
    DARAJA_PRODUCTION_URL: str = "https://api.safaricom.co.ke"
    # Where `simulator` channels send their pushes; unset means the simulator `serve` mounts.
    DARAJA_SIMULATOR_URL: str | None = None
    DARAJA_TIMEOUT_SECONDS: float = Field(default=30.0, gt=0)
    # Safaricom's certificate the initiator password is encrypted with (money out, status, balance,
    # reversals); unset: the one lipapush ships (core/daraja/certs/README.md). Set it to the file
    # downloaded from the Daraja portal when Safaricom changes its key.
    DARAJA_CERT_SANDBOX: str | None = None
    DARAJA_CERT_PRODUCTION: str | None = None
    # Money out, per business unless its own settings lower or raise them (whole shillings): the
    # most one payout may send, and all payouts of one Nairobi day together. M-Pesa's own B2C limits
    # (KES 10 to 250 000 a payout) apply on top.
    PAYOUT_MAX_KES: int = Field(default=70_000, ge=10, le=250_000)
    PAYOUT_DAILY_MAX_KES: int = Field(default=300_000, ge=10, le=100_000_000)
    SIM_CALLBACK_DELAY: float = Field(default=1.0, ge=0)
    # A pending payment is queried this long after the push, then retried with backoff until it
    # expires: a payment must never stay pending forever.
    RECONCILE_AFTER_SECONDS: int = Field(default=90, ge=1)
    EXPIRE_AFTER_SECONDS: int = Field(default=15 * 60, ge=60)
    # A job whose message went out this long ago and never finished (its worker died, Redis lost it)
    # is sent again by the relay. Jobs are idempotent, so a slow job sent twice is harmless.
    JOB_VISIBILITY_SECONDS: int = Field(default=300, ge=1)
    STK_MAX_AMOUNT: int = Field(default=250_000, ge=1)
    # Every accepted push is a prompt on someone's phone, so a leaked API key must not flood numbers
    # (core/payments/use_cases.py; moving one-minute windows, Redis-backed when REDIS_URL is set).
    # Pushes one API key may start a minute, whatever phones they go to:
    STK_PUSHES_PER_KEY_PER_MINUTE: int = Field(default=120, ge=1, le=100_000)
    # Prompts one business may send to one phone a minute, from any entry point (API, panel, bot,
    # merchant USSD). Counted per business, so one business's traffic never blocks another's.
    STK_PUSHES_PER_PHONE_PER_MINUTE: int = Field(default=5, ge=1, le=10_000)
    EXPORT_DIR: str | None = None

    # Commission and billing (cents unless named otherwise)
    COMMISSION_DEFAULT_BPS: int = Field(default=100, ge=0, le=10_000)
    WALLET_FLOOR_CENTS: int = 0
    LOW_BALANCE_THRESHOLD_CENTS: int = Field(default=50_000, ge=0)
    INVOICE_DUE_DAYS: int = Field(default=7, ge=0, le=90)
    INVOICE_GRACE_DAYS: int = Field(default=3, ge=0, le=90)

    # The platform's own Daraja app: wallet top-ups are paid into it.
    PLATFORM_ENVIRONMENT: str = Field(default="simulator", pattern="^(simulator|sandbox|production)$")
    PLATFORM_CHANNEL_KIND: str = Field(default="paybill", pattern="^(paybill|till)$")
    PLATFORM_SHORT_CODE: str = Field(default=SANDBOX_SHORT_CODE, pattern=r"^\d{5,7}$")
    PLATFORM_TILL_NUMBER: str | None = Field(default=None, pattern=r"^\d{5,7}$")
    PLATFORM_CONSUMER_KEY: str | None = None
    PLATFORM_CONSUMER_SECRET: str | None = None
    PLATFORM_PASSKEY: str | None = None
    # Request bodies are counted while they stream in (web/limits.py): past its route's limit a request
    # is answered 413 at once, so a large or endless body is never held in memory.
    MAX_BODY_BYTES_DARAJA_CALLBACK: int = Field(default=64 * 1024, ge=1024)  # /callbacks/daraja/…
    # /ussd, /ussd/events and /callbacks/at/delivery (Africa's Talking's small form posts)
    MAX_BODY_BYTES_AT_CALLBACK: int = Field(default=8 * 1024, ge=1024)
    MAX_BODY_BYTES_TELEGRAM_WEBHOOK: int = Field(default=1024 * 1024, ge=1024)  # /telegram/webhook/…
    MAX_BODY_BYTES_DEFAULT: int = Field(default=1024 * 1024, ge=1024)  # every other URL
    LOG_LEVEL: str = "INFO"
    LOG_JSON: bool = False

    TELEGRAM_BOT_TOKEN: str | None = None
    TELEGRAM_API_BASE: str | None = None
    # The secret path segment and X-Telegram-Bot-Api-Secret-Token for webhook mode (unset: polling).
    TELEGRAM_WEBHOOK_SECRET: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_\-]{16,256}$")
    AT_USERNAME: str | None = None
    AT_API_KEY: str | None = None
    AT_BASE_URL: str | None = None
    # The platform's sender id (shortcode or alphanumeric) for SMS of businesses without their own.
    AT_SENDER_ID: str | None = Field(default=None, pattern=r"^[A-Za-z0-9 \-_.]{1,11}$")
    # Africa's Talking does not sign its callbacks: when set, /ussd and /callbacks/at/delivery
    # answer only requests carrying ?secret=<this> (put it in the callback URLs on AT's dashboard).
    AT_CALLBACK_SECRET: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_\-]{16,128}$")
    # The code dialled for the USSD menu, shown in messages that tell people how to reach it.
    USSD_CODE: str = Field(default="*384*123#", pattern=r"^\*[0-9*]{1,20}#$")
    # Signed download links (customer book by SMS) stop working after this many minutes.
    DOWNLOAD_LINK_MINUTES: int = Field(default=60, ge=1, le=7 * 24 * 60)
    SMTP_URL: str | None = None
    # The platform's Pesapal account (hotspot providers' subscriptions). Unset: the Pesapal
    # stand-in `serve` mounts at /sim/pesapal, with its own test credentials.
    PESAPAL_BASE_URL: str | None = None
    PESAPAL_CONSUMER_KEY: str | None = None
    PESAPAL_CONSUMER_SECRET: str | None = None
    # Providers are reminded this many days before their subscription (or free trial) ends.
    SUBSCRIPTION_REMINDER_DAYS: int = Field(default=3, ge=1, le=30)
    # A new hotspot provider sells at once on a free trial of this many days (billed by subscription,
    # never commission); unless it subscribes by then, new sales stop as for a lapsed subscription.
    # 0: no trial, a new provider subscribes before its first sale.
    HOTSPOT_TRIAL_DAYS: int = Field(default=14, ge=0, le=365)
    # Outgoing webhooks (core/webhooks). Deliveries go only to public internet addresses; this lets
    # them reach loopback and private networks (and plain http, any port) for development and tests.
    # Refused with APP_ENV=production: one merchant's URL must never reach the platform's own network.
    WEBHOOK_ALLOW_PRIVATE_TARGETS: bool = False
    # A receiver gets this long to accept the connection, and this long in all to answer.
    WEBHOOK_CONNECT_TIMEOUT_SECONDS: float = Field(default=5.0, gt=0, le=60)
    WEBHOOK_TIMEOUT_SECONDS: float = Field(default=15.0, gt=0, le=60)
    # Development and tests only: the retry schedule's waits (5 s, 5 min, 30 min, …) times this, so a
    # test sees the third attempt in seconds. Refused below 1 with APP_ENV=production.
    WEBHOOK_RETRY_SCALE: float = Field(default=1.0, gt=0, le=1)
    # Webhook messages, their deliveries and attempt logs are kept this long, then deleted daily.
    WEBHOOK_RETENTION_DAYS: int = Field(default=30, ge=1, le=3650)
    # API usage log (core/usage): each web process buffers the rows of /api requests in memory and
    # inserts them in one batch this often (and at shutdown), so a request never waits on that insert.
    # A process killed outright loses at most this much of the log: fine for usage, never for money.
    USAGE_FLUSH_SECONDS: float = Field(default=1.0, gt=0, le=60)
    # API request log rows are kept this long, then deleted daily; usage figures reach back as far.
    USAGE_RETENTION_DAYS: int = Field(default=90, ge=1, le=3650)

    @field_validator("ENCRYPTION_KEYS", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [k.strip() for k in value.split(",") if k.strip()]
        return value

    @field_validator("ENCRYPTION_KEYS")
    @classmethod
    def _valid_fernet_keys(cls, keys: list[str]) -> list[str]:
        from cryptography.fernet import Fernet

        if not keys:
            raise ValueError("give at least one Fernet key (comma-separated; the first one encrypts)")
        for i, key in enumerate(keys, start=1):
            try:
                Fernet(key)
            except Exception:
                raise ValueError(
                    f"key #{i} is not a Fernet key (32 url-safe base64 bytes); "
                    "make one with `lipapush keygen`"
                ) from None
        return keys

    @field_validator("DATABASE_URL", "MIGRATION_DATABASE_URL")
    @classmethod
    def _async_driver(cls, url: str | None, info: ValidationInfo) -> str | None:
        if not url and info.field_name == "MIGRATION_DATABASE_URL":
            return None
        assert url is not None
        # Users paste the URL their host gives them; map it to the async driver instead of failing.
        if url.startswith("postgres://"):
            url = "postgresql+asyncpg://" + url.removeprefix("postgres://")
        elif url.startswith("postgresql://"):
            url = "postgresql+asyncpg://" + url.removeprefix("postgresql://")
        elif url.startswith("sqlite:///"):
            url = "sqlite+aiosqlite:///" + url.removeprefix("sqlite:///")
        if not url.startswith(("postgresql+asyncpg://", "sqlite+aiosqlite://")):
            raise ValueError("use postgresql://… (asyncpg) or sqlite+aiosqlite:///path.db")
        return url

    @field_validator(
        "PUBLIC_BASE_URL",
        "DARAJA_SIMULATOR_URL",
        "DARAJA_SANDBOX_URL",
        "DARAJA_PRODUCTION_URL",
        "TELEGRAM_API_BASE",
        "AT_BASE_URL",
        "PESAPAL_BASE_URL",
    )
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if url is None or url == "":
            return None
        if not url.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return url.rstrip("/")

    @model_validator(mode="after")
    def _no_dev_secrets_in_production(self) -> Settings:
        if self.APP_ENV is AppEnv.production:
            if self.SECRET_KEY == _DEV_SECRET or len(self.SECRET_KEY) < 32:
                raise ValueError("SECRET_KEY: set a random value of at least 32 characters in production")
            if _DEV_FERNET_KEY in self.ENCRYPTION_KEYS:
                raise ValueError("ENCRYPTION_KEYS: the development key cannot be used in production")
            if not self.PUBLIC_BASE_URL:
                raise ValueError("PUBLIC_BASE_URL: required in production (Daraja callbacks are sent there)")
            if not self.AT_CALLBACK_SECRET:
                raise ValueError(
                    "AT_CALLBACK_SECRET: required in production (Africa's Talking does not sign its "
                    "callbacks); set 16+ random characters and add ?secret=… to the USSD callback URLs"
                )
            if self.WEBHOOK_ALLOW_PRIVATE_TARGETS:
                raise ValueError(
                    "WEBHOOK_ALLOW_PRIVATE_TARGETS: development only; in production webhooks go only to "
                    "public addresses (unset it)"
                )
            if self.WEBHOOK_RETRY_SCALE != 1.0:
                raise ValueError("WEBHOOK_RETRY_SCALE: tests only; production keeps the full retry schedule")
        if self.PESAPAL_BASE_URL and not (self.PESAPAL_CONSUMER_KEY and self.PESAPAL_CONSUMER_SECRET):
            raise ValueError(
                "PESAPAL_CONSUMER_KEY, PESAPAL_CONSUMER_SECRET: required when PESAPAL_BASE_URL is set"
            )
        if self.PLATFORM_ENVIRONMENT != "simulator":
            missing = [
                n
                for n in ("PLATFORM_CONSUMER_KEY", "PLATFORM_CONSUMER_SECRET", "PLATFORM_PASSKEY")
                if not getattr(self, n)
            ]
            if missing:
                raise ValueError(f"{', '.join(missing)}: required when PLATFORM_ENVIRONMENT is not simulator")
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.DATABASE_URL.startswith("sqlite")

    @cached_property
    def base_url(self) -> str:
        return self.PUBLIC_BASE_URL or "http://127.0.0.1:8000"

    @property
    def telegram_api_base(self) -> str:
        return self.TELEGRAM_API_BASE or "https://api.telegram.org"

    @property
    def pesapal_base_url(self) -> str:
        return self.PESAPAL_BASE_URL or f"{self.base_url}/sim/pesapal"

    @property
    def pesapal_credentials(self) -> tuple[str, str]:
        if self.PESAPAL_BASE_URL:
            return self.PESAPAL_CONSUMER_KEY or "", self.PESAPAL_CONSUMER_SECRET or ""
        return "sim-key", "sim-secret"  # the stand-in's

    @property
    def sms_configured(self) -> bool:
        """Without Africa's Talking credentials SMS stay in the outbox (`lipapush outbox`)."""
        return bool(self.AT_USERNAME and self.AT_API_KEY)

    @property
    def simulator_url(self) -> str:
        return self.DARAJA_SIMULATOR_URL or f"{self.base_url}/sim/daraja"


class SettingsError(RuntimeError):
    """Raised with one line per bad variable, so the operator knows exactly what to fix."""


def load_settings(**overrides: object) -> Settings:
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"]) or "settings"
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"  {name}: {msg}")
        raise SettingsError("Invalid settings:\n" + "\n".join(lines)) from None
