"""The C2B validation URL: Daraja waits for its answer (about 8 s), so it is answered in the request,
not through the inbox (core.c2b)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["callbacks"], include_in_schema=False)
