"""Every domain's models, imported once so Alembic and tests see one metadata."""

from core.audit.models import AuditLog
from core.auth.models import ApiKey, User
from core.customers.models import Customer
from core.jobs.models import JobOutbox
from core.payments.models import CallbackInbox, Payment
from core.tenants.models import MpesaChannel, Tenant

__all__ = [
    "ApiKey",
    "AuditLog",
    "CallbackInbox",
    "Customer",
    "JobOutbox",
    "MpesaChannel",
    "Payment",
    "Tenant",
    "User",
]
