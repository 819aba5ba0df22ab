"""What both hosts (the single-user extension and the hub service) set up once and hand to every handler."""
from __future__ import annotations

from dataclasses import dataclass, field

from .config import FlowSettings
from .health import CachedHealth


@dataclass
class FlowHost:
    settings: FlowSettings
    health: CachedHealth = field(init=False)

    def __post_init__(self) -> None:
        self.settings.root.mkdir(parents=True, exist_ok=True)
        self.health = CachedHealth(self.settings)
