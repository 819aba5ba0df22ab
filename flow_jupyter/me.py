"""``GET /flow/api/me``: who the caller is and what this server offers, in one answer a UI reads at start-up.

Capabilities are read from FlowSettings and the upload protocol's constants, so a UI never hard-codes a limit the
server may change. Nothing here is a secret or a filesystem path: the answer is the caller's own business plus
what every signed-in user may know about the server.
"""
from __future__ import annotations

import shutil
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ._version import __version__
from .config import FlowSettings
from .data import tus
from .data.downloads import MAX_BULK_FILES
from .db.models import Group, Membership
from .identity import Actor


def available_backends(settings: FlowSettings) -> list[str]:
    """Backends a launch may name here: local always; Slurm when it is the executor or its submit command is on
    PATH (checked without running anything: whether the controller answers is /health's business)."""
    found = ["local"]
    if settings.executor == "slurm" or shutil.which(settings.slurm_submit_command[0]):
        found.append("slurm")
    return found


def capabilities(settings: FlowSettings) -> dict[str, Any]:
    return {
        "backends": available_backends(settings),
        "executor": settings.executor,
        "host_paths": settings.allow_host_paths,
        "url_schemes": list(settings.allowed_url_schemes),
        "uploads": {"protocol": "tus", "tus_version": tus.TUS_VERSION,
                    "extensions": tus.TUS_EXTENSIONS.split(","),
                    "checksum_algorithms": list(tus.CHECKSUM_ALGORITHMS), "max_size": settings.max_upload_bytes},
        "downloads": {"max_files": MAX_BULK_FILES},
        "page_size": {"default": settings.page_size_default, "max": settings.page_size_max},
    }


def me(session: Session, actor: Actor, settings: FlowSettings) -> dict[str, Any]:
    """The caller (as resolved: a hub user's groups are synced by then), their groups with their role in each,
    Flow's version and the server's capabilities."""
    rows = session.execute(select(Group.id, Group.name, Membership.role).join(Membership)
                           .where(Membership.user_id == actor.user_id).order_by(Group.name, Group.id)).all()
    return {
        "name": actor.name,
        "user_id": actor.user_id,
        "is_admin": actor.is_admin,
        "groups": [{"id": group_id, "name": name, "role": role.value} for group_id, name, role in rows],
        "version": __version__,
        "capabilities": capabilities(settings),
    }
