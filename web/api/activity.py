"""/api/activity: placeholder, filled in by the activity work."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["activity"])
