"""/api routes of core.c2b (filled in by its work in progress)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["c2b"])
