"""Where a parameter value may point: the confinement rule for every path a user can name at launch.

Nextflow runs in the run directory with the rights of the account that started it, so a parameter value that is
a path (``--input ../<another run>/results/x.bam``, ``--outdir /flow/uploads/...``, ``--fasta ~/.ssh/id_rsa``)
would reach whatever that account can reach. This module decides, from the value alone and a :class:`PathPolicy`,
whether a string may go to a pipeline. It reads no database and opens no file (except ``realpath`` and, for
``exists``, one ``stat``); the caller (pipelines/params.py) walks the parameters and asks here for each string.

The rule:

* Data-file references (``flow://datafile/<id>``) are not paths: the caller resolves them with a permission check.
* A relative path without ``..`` stays inside the run directory (Nextflow resolves it against its launch
  directory); once the run directory exists it is also checked after symlinks are resolved.
* With host paths off (the multi-user default) nothing else is a path a user may name: absolute paths, ``~``,
  ``..`` components and ``file:`` URLs are refused, in every string of the parameters; in a parameter the schema
  types as a path (``format: file-path | directory-path | path | file-path-pattern``) also a URL whose scheme is
  not in ``allowed_url_schemes``.
* With host paths on (single user), such a path must resolve under one of ``host_path_roots``, and never into
  the Flow root (the store and every run directory) except into this run's own directory.
* Output parameters (``outdir``...) are pinned inside the run directory with host paths off: a relative path
  without ``..``, never a URL.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_TILDE = re.compile(r"^~[^/]*(/|$)")
#: Stand-in for the run directory when a launch is validated before its directory exists.
PENDING_RUN = "executions/.pending-run"


@dataclass(frozen=True)
class PathPolicy:
    """What the caller's settings allow, for one launch (``run_dir`` None: checked before it exists)."""

    flow_root: Path
    allow_host_paths: bool
    host_roots: tuple[Path, ...]
    url_schemes: frozenset[str]
    run_dir: Path | None = None

    @classmethod
    def from_settings(cls, settings, run_dir: Path | None = None) -> "PathPolicy":
        return cls(
            flow_root=Path(os.path.realpath(settings.root_dir)),
            allow_host_paths=bool(settings.allow_host_paths),
            host_roots=tuple(Path(os.path.realpath(os.path.expanduser(root))) for root in settings.host_path_roots
                             if root),
            url_schemes=frozenset(s.lower() for s in settings.allowed_url_schemes),
            run_dir=Path(os.path.realpath(run_dir)) if run_dir is not None else None,
        )

    @property
    def run_base(self) -> Path:
        return self.run_dir if self.run_dir is not None else self.flow_root / PENDING_RUN


@dataclass(frozen=True)
class Refusal:
    reason: str
    message: str


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _components(value: str) -> list[str]:
    """Path components as a POSIX system (and Nextflow on it) sees them: a backslash is an ordinary character."""
    return value.split("/")


def _local_path(value: str) -> str | None:
    """The host path a string names if it is one Nextflow would open outside the run directory: absolute,
    ``~``-relative, with a ``..`` component, or a ``file:`` URL; None for anything else."""
    scheme = _SCHEME.match(value)
    if scheme and scheme.group(1).lower() == "file":
        parts = urlsplit(value)
        return unquote(parts.path) or "/"
    if _TILDE.match(value):
        expanded = os.path.expanduser(value)
        if expanded != value:
            return expanded
        # "~" of no known user: Nextflow opens "~30x coverage" as a relative name; "~/x" without a home is refused.
        return value if value == "~" or value.startswith("~/") else None
    if value.startswith("/"):
        return value
    if ".." in _components(value):
        return value
    return None


def url_scheme(value: str) -> str | None:
    """The scheme of a URL-shaped value (``s3://…``, ``https://…``); None for a plain path."""
    match = _SCHEME.match(value)
    if match and value[match.end():].startswith("//"):
        return match.group(1).lower()
    return None


def check_path(value: str, policy: PathPolicy, *, path_typed: bool, output: bool = False) -> Refusal | None:
    """None when ``value`` may reach the pipeline under ``policy``; else why not.

    ``path_typed``: the schema says this value is a location (strict scheme check); ``output``: the pipeline writes
    there (``outdir``), so with host paths off it must stay in the run directory.
    """
    if "\x00" in value:
        return Refusal("path_not_allowed", "A path may not contain a NUL character.")
    scheme = url_scheme(value)
    if scheme is not None and scheme != "file":
        if output and not policy.allow_host_paths:
            return Refusal("path_not_allowed", "Output locations are inside the run directory: give a relative "
                                               "path such as 'results'.")
        if path_typed and scheme not in policy.url_schemes:
            allowed = ", ".join(sorted(policy.url_schemes)) or "none"
            return Refusal("url_scheme_not_allowed", f"URLs with scheme '{scheme}' are not allowed here "
                                                     f"(allowed: {allowed}).")
        return None
    local = _local_path(value)
    if local is None:
        return _check_in_run(value, policy) if (path_typed or output) else None
    if not policy.allow_host_paths:
        return Refusal("path_not_allowed", "Only Flow data files (flow://datafile/<id>) and paths inside the run "
                                           "directory are allowed: no absolute paths, '~' or '..'.")
    return _check_host(local, policy)


def _check_in_run(value: str, policy: PathPolicy) -> Refusal | None:
    """A relative path without ``..``: inside the run directory, also after its symlinks are followed."""
    if policy.run_dir is None or value.strip() == "":
        return None
    real = Path(os.path.realpath(policy.run_dir / value))
    if not _inside(real, policy.run_dir):
        return Refusal("path_not_allowed", "This path leaves the run directory through a symbolic link.")
    return None


def _check_host(local: str, policy: PathPolicy) -> Refusal | None:
    """An absolute (or escaping relative) path with host paths on: under an allowed root, never into the store."""
    base = policy.run_base
    real = Path(os.path.realpath(base / local)) if not os.path.isabs(local) else Path(os.path.realpath(local))
    if _inside(real, policy.flow_root) and not (policy.run_dir is not None and _inside(real, policy.run_dir)):
        return Refusal("path_not_allowed", "This path points into Flow's own store: name a data file "
                                           "(flow://datafile/<id>) instead.")
    if not any(_inside(real, root) for root in policy.host_roots):
        roots = ", ".join(str(root) for root in policy.host_roots) or "none configured"
        return Refusal("path_not_allowed", f"Host paths must be under one of the allowed roots ({roots}).")
    return None


def host_path_exists(value: str, policy: PathPolicy) -> bool | None:
    """Whether an allowed host path exists (None: not a host path Flow can see, e.g. a URL or a relative path
    before the run directory exists)."""
    if url_scheme(value) not in (None, "file"):
        return None
    local = _local_path(value)
    if local is None:
        if policy.run_dir is None:
            return None
        return (policy.run_dir / value).exists()
    real = Path(os.path.realpath(policy.run_base / local)) if not os.path.isabs(local) else Path(local)
    return real.exists()


def is_glob(value: str) -> bool:
    return any(ch in value for ch in "*?[{")
