"""Who acts on the platform admin's pages: the signed-in person as themselves.

It is `viewer.actor`, except while a platform admin views as a business: the /admin pages (and
stopping or widening that view) are still the admin's own, so they act as the admin, not as the
business. Core's use cases check `Permission.platform_admin`; a business user is refused there."""

from __future__ import annotations

from core.access.actor import Actor, Via
from web.panel.security import Viewer


def admin_actor(viewer: Viewer) -> Actor:
    if not viewer.impersonating:
        return viewer.actor
    return Actor.for_user(
        user_id=viewer.user_id, tenant_id=viewer.own_tenant_id, role=viewer.role, via=Via.panel
    )
