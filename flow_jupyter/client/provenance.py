"""Where a launch came from: the notebook and the cell, recorded with the execution so a result can be traced
back to the code that asked for it.

Inside an IPython kernel: the notebook path from ``JPY_SESSION_NAME`` (jupyter_server sets it for each kernel;
made relative to the server's root when possible), else from the server's session list; the cell from the
``cellId`` JupyterLab puts in each execute request's metadata, else ``sha256:<hex>`` of the cell's source (other
front-ends). Outside a kernel (a script, a terminal IPython): ``{}``.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

MAX_NOTEBOOK_CHARS = 4096
MAX_CELL_CHARS = 255
SessionList = Callable[[], list[dict[str, Any]]]


def capture(*, root_dir: str | None = None, sessions: SessionList | None = None,
            shell: Any = None) -> dict[str, str]:
    """``{"notebook": ..., "cell": ...}`` for the code running now (either key may be missing), or ``{}``."""
    shell = shell if shell is not None else kernel_shell()
    if shell is None:
        return {}
    found: dict[str, str] = {}
    notebook = notebook_path(root_dir=root_dir, sessions=sessions)
    if notebook:
        found["notebook"] = notebook[:MAX_NOTEBOOK_CHARS]
    cell = cell_id(shell)
    if cell:
        found["cell"] = cell[:MAX_CELL_CHARS]
    return found


def kernel_shell() -> Any:
    """The running kernel's shell, or None outside an ipykernel."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    return shell if shell is not None and getattr(shell, "kernel", None) is not None else None


def notebook_path(*, root_dir: str | None = None, sessions: SessionList | None = None,
                  environ: dict[str, str] | None = None) -> str | None:
    env = os.environ if environ is None else environ
    path = env.get("JPY_SESSION_NAME")
    if path:
        return _relative_to_root(path, root_dir)
    if sessions is None:
        return None
    kernel = _kernel_id()
    try:
        listed = sessions()
    except Exception:  # the session API is a fallback: no notebook path is better than a failed launch
        return None
    for session in listed:
        if kernel and (session.get("kernel") or {}).get("id") == kernel and session.get("path"):
            return str(session["path"])
    return None


def cell_id(shell: Any) -> str | None:
    """JupyterLab's cell id, else a hash of the cell's source."""
    parent = _parent_message(shell)
    cell = ((parent.get("metadata") or {}).get("cellId")) if parent else None
    if cell:
        return str(cell)
    source = ((parent.get("content") or {}).get("code")) if parent else None
    if not source:
        history = getattr(getattr(shell, "history_manager", None), "input_hist_raw", None) or []
        source = history[-1] if history else None
    if not source:
        return None
    return "sha256:" + hashlib.sha256(str(source).encode()).hexdigest()


def _parent_message(shell: Any) -> dict[str, Any]:
    """The execute request being run (metadata and content), as ipykernel keeps it."""
    kernel = getattr(shell, "kernel", None)
    try:
        parent = kernel.get_parent() if kernel is not None else None
    except Exception:  # called outside the shell's context (another thread, an old ipykernel)
        parent = None
    return parent if isinstance(parent, dict) else {}


def _relative_to_root(path: str, root_dir: str | None) -> str:
    if root_dir and os.path.isabs(path):
        try:
            return Path(path).resolve().relative_to(Path(root_dir).resolve()).as_posix()
        except ValueError:
            return path
    return path


def _kernel_id() -> str | None:
    from .discovery import kernel_connection_file

    connection = kernel_connection_file()
    if not connection:
        return None
    name = Path(connection).stem  # kernel-<id>
    return name.removeprefix("kernel-") or None
