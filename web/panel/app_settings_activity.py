"""Settings → Activity (/app/settings/activity): placeholder, filled in by the activity work."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
