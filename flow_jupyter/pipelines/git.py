"""The git operations the pipeline registry needs, as argv lists (the source is never parsed by a shell).

A registered repository is mirrored once under ``pipelines/<id>/mirror.git``; each pinned version is exported
from the mirror with ``git archive`` and unpacked with tarfile's ``data`` filter (no links out, no absolute
paths), so a checkout has no ``.git`` and cannot be changed by later fetches. A tree with a link leading outside it
is refused with 400 ``unsafe_link`` naming the link, and nothing of it is left on disk.
"""
from __future__ import annotations

import os
import re
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import FlowError, bad_request
from ..proc import CommandError, run

SHA = re.compile(r"^[0-9a-f]{40}$")
GIT_TIMEOUT = 300.0


def _env() -> dict[str, str]:
    # Never prompt for credentials; fail fast instead.
    return dict(os.environ, GIT_TERMINAL_PROMPT="0", GIT_ASKPASS="/bin/false", SSH_ASKPASS="/bin/false",
                GIT_SSH_COMMAND="ssh -oBatchMode=yes")


def _git(*args: str, cwd: str | None = None, timeout: float = GIT_TIMEOUT) -> str:
    return run(["git", *args], env=_env(), cwd=cwd, timeout=timeout).stdout


@dataclass(frozen=True)
class RemoteRef:
    name: str
    kind: str  # "tag" or "branch"
    commit: str


def check_source(source: str) -> str:
    """A source is a local directory path or a URL; anything that could be read as a git option is refused."""
    source = source.strip()
    if not source or source.startswith("-") or "\n" in source or "\x00" in source:
        raise bad_request("The source must be a git repository path or URL.", field="/source", reason="bad_source")
    if "://" not in source and not source.startswith("git@"):
        path = Path(source).expanduser()
        try:
            is_dir = path.is_dir()
        except OSError:  # a name too long for the filesystem, a loop of links: no directory either way
            is_dir = False
        if not is_dir:
            raise bad_request(f"{source[:200]} is not a directory.", field="/source", reason="not_a_git_repository")
        return str(path.resolve())
    return source


def list_refs(source: str) -> list[RemoteRef]:
    """Tags and branches of the repository at ``source``; 400 when it is not a reachable git repository."""
    try:
        out = _git("ls-remote", "--tags", "--heads", "--", source, timeout=60)
    except CommandError as exc:
        reason = "not_a_git_repository" if "://" not in source else "unreachable"
        raise bad_request(f"Cannot read git repository {source}: {exc.summary()}", field="/source",
                          reason=reason) from None
    refs: dict[tuple[str, str], str] = {}
    for line in out.splitlines():
        commit, _, full = line.partition("\t")
        if full.startswith("refs/tags/"):
            name, peeled = full.removeprefix("refs/tags/"), full.endswith("^{}")
            key = ("tag", name.removesuffix("^{}"))
            if peeled or key not in refs:  # an annotated tag's peeled line names the commit
                refs[key] = commit
        elif full.startswith("refs/heads/"):
            refs[("branch", full.removeprefix("refs/heads/"))] = commit
    return sorted((RemoteRef(name, kind, commit) for (kind, name), commit in refs.items()),
                  key=lambda r: (r.kind != "tag", r.name))


def mirror(source: str, destination: Path) -> None:
    """Create or refresh a bare mirror of ``source``."""
    if (destination / "HEAD").exists():
        _git("--git-dir", str(destination), "fetch", "--prune", "--tags", "--quiet", "origin",
             "+refs/heads/*:refs/heads/*")
        return
    destination.parent.mkdir(parents=True, exist_ok=True)
    try:
        _git("clone", "--mirror", "--quiet", "--", source, str(destination))
    except CommandError as exc:
        raise bad_request(f"Cannot clone {source}: {exc.summary()}", field="/source", reason="unreachable") from None


def resolve_ref(mirror_dir: Path, ref: str) -> str:
    """The commit a tag, branch or commit id names in the mirror; 400 ``unknown_ref`` otherwise."""
    if ref.startswith("-") or not ref.strip():
        raise bad_request("Not a git ref.", field="/ref", reason="unknown_ref")
    try:
        return _git("--git-dir", str(mirror_dir), "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}",
                    timeout=30).strip()
    except CommandError:
        raise bad_request(f"No tag, branch or commit '{ref}' in the repository.", field="/ref",
                          reason="unknown_ref") from None


def export(mirror_dir: Path, commit: str, destination: Path) -> bool:
    """Unpack the tree of ``commit`` into ``destination`` (created; must not exist). False when a concurrent export
    of the same commit put it there first (the same tree: that one is kept)."""
    if not SHA.match(commit):
        raise ValueError(f"not a commit id: {commit!r}")
    destination.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=destination.parent, prefix=".export-") as work:
        archive = Path(work) / "tree.tar"
        _git("--git-dir", str(mirror_dir), "archive", "--format=tar", "-o", str(archive), commit)
        staged = Path(work) / "tree"
        with tarfile.open(archive) as tar:
            try:
                tar.extractall(staged, filter="data")
            except tarfile.FilterError as exc:
                raise _refused_entry(commit, exc) from None
        try:
            staged.rename(destination)
        except OSError:
            if not destination.is_dir():
                raise
            return False
    return True


def _refused_entry(commit: str, exc: tarfile.FilterError) -> FlowError:
    """400 naming the entry the ``data`` filter refused: a pipeline may read nothing beyond its own tree.

    Typically a symbolic link to an absolute path (``nextflow_schema.json -> /etc/passwd``) or one that climbs out
    (``assets -> ../../..``); following it would let a registered version, and every run of it, read host files.
    """
    entry = exc.tarinfo.name
    if isinstance(exc, (tarfile.AbsoluteLinkError, tarfile.LinkOutsideDestinationError)):
        what = f"is a link to {exc.tarinfo.linkname!r}, outside the repository"
    else:
        what = "is not a plain file or directory inside the repository"
    return FlowError(400, "unsafe_link", f"{entry!r} in commit {commit[:12]} {what}; Flow does not register a "
                     "version whose files lead outside it. Replace the link with the file itself.", entry)
