"""`lipapush` commands of core.c2b (filled in by its work in progress)."""

from __future__ import annotations
