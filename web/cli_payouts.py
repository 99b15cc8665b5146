"""`lipapush` commands of core.payouts (filled in by its work in progress)."""

from __future__ import annotations
