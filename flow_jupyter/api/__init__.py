"""Thin REST handlers under /flow/api/, one module per resource; `default_handlers` collects them."""
from __future__ import annotations

from . import health

default_handlers: list[tuple] = [*health.default_handlers]
