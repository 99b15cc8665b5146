"""API usage across businesses: the platform admin's (panel Admin → Usage, `lipapush usage`)."""

from __future__ import annotations

from core.access.actor import Actor
from core.access.permissions import Permission
from core.access.use_case import unit_of_work, use_case
from core.errors import InvalidInput
from core.usage.across import across_businesses
from core.usage.schemas import PlatformUsage

MAX_ROWS = 500


@use_case(Permission.platform_admin, query=True)
async def usage_across_businesses(
    actor: Actor, *, limit: int = 100, search: str | None = None
) -> PlatformUsage:
    """Every business that used the API or pushed live this month, the busiest first, `limit` of them
    (1 to 500), only those whose name or slug holds `search` if given; the totals count them all."""
    if not 1 <= limit <= MAX_ROWS:
        raise InvalidInput("limit", f"Show 1 to {MAX_ROWS} businesses.")
    async with unit_of_work(actor, readonly=True) as uow:
        return await across_businesses(uow.session, limit=limit, search=search)
