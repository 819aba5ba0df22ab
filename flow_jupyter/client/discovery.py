"""Finding Flow's API and a token, so that `FlowClient()` works with no arguments in a notebook.

Order (first that applies wins):

1. an explicit ``url`` (the Jupyter server's URL or the API's own ``…/flow/api/``) and ``token``;
2. ``FLOW_API_URL`` with ``FLOW_API_TOKEN`` or ``JUPYTERHUB_API_TOKEN`` — JupyterHub puts both in users' servers,
   and the API is then the hub's Flow service, not the user's own server;
3. the running Jupyter server that hosts this kernel, from ``jupyter_server.serverapp.list_running_servers()``:
   the kernel's parent process, else the server whose runtime directory holds the kernel's connection file, whose
   root directory holds the notebook (``JPY_SESSION_NAME``) or the current directory, else the only one running.

jupyter_server is imported only here and only when step 3 is reached.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .errors import FlowError

API_PATH = "flow/api/"
ServerList = Callable[..., Iterable[dict[str, Any]]]


@dataclass(frozen=True)
class Endpoint:
    """Where the API is and how to authenticate; ``root_dir`` is the Jupyter server's, when known."""

    api_url: str
    token: str | None
    source: str = "explicit"
    root_dir: str | None = None

    @property
    def server_url(self) -> str:
        """The server's URL including its base path (``http://host:8888/base/``), i.e. the API URL without
        ``flow/api/``."""
        return self.api_url[: -len(API_PATH)]

    @property
    def origin(self) -> str:
        parts = urlsplit(self.api_url)
        return urlunsplit((parts.scheme, parts.netloc, "", "", ""))

    @property
    def api_path(self) -> str:
        """The API's absolute URL path (``/base/flow/api/``), what a browser on the same origin asks for."""
        return urlsplit(self.api_url).path


def api_url_of(url: str) -> str:
    """``http://h:8888/base`` and ``http://h:8888/base/flow/api`` both give ``http://h:8888/base/flow/api/``."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise FlowError(f"{url!r} is not an http(s) URL of a Jupyter server or of Flow's API.", reason="invalid_url")
    path = parts.path.rstrip("/")
    if not path.endswith("/flow/api"):
        path += "/flow/api"
    host = parts.netloc.replace("0.0.0.0", "127.0.0.1").replace("[::]", "[::1]")  # a listen address, not a peer
    return urlunsplit((parts.scheme, host, path + "/", "", ""))


def discover(url: str | None = None, token: str | None = None, *, environ: Mapping[str, str] | None = None,
             servers: ServerList | None = None, connection_file: str | None = None,
             cwd: str | None = None) -> Endpoint:
    """The endpoint to use (see the module docstring). The keyword arguments replace the process's environment,
    the server list, the kernel's connection file and the current directory (tests pass fakes)."""
    env = os.environ if environ is None else environ
    if url:
        found = token or env.get("FLOW_API_TOKEN") or env.get("JUPYTERHUB_API_TOKEN")
        if not found:
            match = _server_with_url(api_url_of(url), servers)
            found = (match or {}).get("token") or env.get("JUPYTER_TOKEN")
        return Endpoint(api_url_of(url), found or None, "explicit")
    if env.get("FLOW_API_URL"):
        return Endpoint(api_url_of(env["FLOW_API_URL"]),
                        token or env.get("FLOW_API_TOKEN") or env.get("JUPYTERHUB_API_TOKEN") or None, "environment")
    info = find_server(env, servers, connection_file, cwd)
    return Endpoint(api_url_of(info["url"]),
                    token or info.get("token") or env.get("JUPYTERHUB_API_TOKEN") or env.get("JUPYTER_TOKEN") or None,
                    "jupyter-server", info.get("root_dir"))


def find_server(env: Mapping[str, str], servers: ServerList | None = None, connection_file: str | None = None,
                cwd: str | None = None) -> dict[str, Any]:
    """The info dict of the running Jupyter server hosting this kernel; FlowError when none or it is ambiguous."""
    list_servers = servers or _list_running_servers
    connection_file = connection_file if connection_file is not None else kernel_connection_file()
    runtime_dir = str(Path(connection_file).parent) if connection_file else None
    candidates = _usable(list_servers())
    if runtime_dir:
        beside_kernel = _usable(list_servers(runtime_dir=runtime_dir))
        candidates = _unique(beside_kernel + candidates)
    else:
        beside_kernel = []
    if not candidates:
        raise FlowError("No running Jupyter server was found, and FLOW_API_URL is not set. Start JupyterLab, or "
                        "pass FlowClient(url=..., token=...).", reason="no_server")
    ancestors = _ancestor_pids()
    for info in candidates:
        if info.get("pid") in ancestors:
            return info
    narrowed = candidates
    for rule in (lambda: [s for s in narrowed if s in beside_kernel],
                 lambda: _holding(narrowed, _session_path(env)),
                 lambda: _holding(narrowed, cwd or os.getcwd())):
        subset = rule()
        if len(subset) == 1:
            return subset[0]
        if subset:
            narrowed = subset
    if len(narrowed) == 1:
        return narrowed[0]
    urls = ", ".join(sorted(str(s.get("url")) for s in narrowed))
    raise FlowError(f"Several Jupyter servers are running ({urls}) and none is clearly this kernel's; pass "
                    "FlowClient(url=..., token=...).", reason="ambiguous_server")


def kernel_connection_file() -> str | None:
    """This kernel's connection file, or None outside an ipykernel."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    if shell is None or getattr(shell, "kernel", None) is None:
        return None
    try:
        from ipykernel.connect import get_connection_file

        return get_connection_file()
    except Exception:  # not a kernel launched with a connection file (e.g. an embedded one)
        return None


def _list_running_servers(runtime_dir: str | None = None) -> list[dict[str, Any]]:
    from jupyter_server.serverapp import list_running_servers

    return list(list_running_servers(runtime_dir=runtime_dir))


def _usable(servers: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Servers reachable over TCP: the client does not speak HTTP over a Unix socket."""
    return [s for s in servers if s.get("url") and not s.get("sock") and str(s["url"]).startswith("http")]


def _unique(servers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: set[Any] = set()
    out = []
    for info in servers:
        key = (info.get("pid"), info.get("url"))
        if key not in seen:
            seen.add(key)
            out.append(info)
    return out


def _server_with_url(api_url: str, servers: ServerList | None) -> dict[str, Any] | None:
    """The running server an explicit URL names, to borrow its token."""
    try:
        listed = _usable((servers or _list_running_servers)())
    except Exception:  # jupyter_server missing or its runtime dir unreadable: no token to borrow
        return None
    return next((s for s in listed if api_url_of(s["url"]) == api_url), None)


def _session_path(env: Mapping[str, str]) -> str | None:
    """The notebook's path as jupyter_server gave it to this kernel (absolute, or relative to its root)."""
    return env.get("JPY_SESSION_NAME") or None


def _holding(servers: list[dict[str, Any]], path: str | None) -> list[dict[str, Any]]:
    """Servers whose root directory contains ``path`` (a relative path: that exists under the root), deepest
    root first wins, so a server rooted in a project beats one rooted in the home directory."""
    if not path:
        return []
    matches: list[tuple[int, dict[str, Any]]] = []
    for info in servers:
        root = info.get("root_dir")
        if not root:
            continue
        root_path = Path(root).resolve()
        target = Path(path) if os.path.isabs(path) else root_path / path
        try:
            inside = target.resolve().is_relative_to(root_path) and (os.path.isabs(path) or target.exists())
        except OSError:
            inside = False
        if inside:
            matches.append((len(root_path.parts), info))
    if not matches:
        return []
    deepest = max(depth for depth, _ in matches)
    return [info for depth, info in matches if depth == deepest]


def _ancestor_pids(limit: int = 8) -> set[int]:
    """The parent process and, on Linux, a few of its ancestors (a kernel may run under a wrapper)."""
    pids = {os.getppid()}
    pid = os.getppid()
    for _ in range(limit):
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
                pid = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
        if pid <= 1:
            break
        pids.add(pid)
    return pids
