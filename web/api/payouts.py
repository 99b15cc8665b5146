"""/api routes of core.payouts (filled in by its work in progress)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["payouts"])
