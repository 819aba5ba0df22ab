"""Find a run's reports from its pipeline's tower.yml `reports:` globs (Seqera Platform's convention).

Seqera matches each pattern against the *end* of a published file's path, as if it started with `**/`: a bare
file name (`multiqc_report.html`, `*_fastqc.html`) matches at any depth, and `bismark/reports/*report.html`
matches wherever that directory chain sits under the output directory. `*` and `?` stay inside one path segment,
`**` crosses segments (also inside a segment, as in `**-scatter.png`), `{a,b}` and `[...]` work as in Java globs.
"""
from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Iterable

from flow_jupyter.reports.serving import guess_mimetype

MAX_WALK_FILES = 20_000
MAX_WALK_DEPTH = 16
MAX_PATTERN_LENGTH = 500
# Nextflow's scratch and bookkeeping under a run dir: never reports, possibly millions of files.
SKIP_TOP_DIRS = frozenset({"work"})


@dataclass(frozen=True)
class ReportSpec:
    """One `reports:` entry: a glob, the label shown to researchers, an optional explicit MIME type."""

    pattern: str
    display: str
    mimetype: str | None = None
    regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "regex", glob_to_regex(self.pattern))

    def matches(self, relpath: str) -> bool:
        """True if a root-relative POSIX path is one of this spec's reports."""
        return self.regex.fullmatch(relpath) is not None


@dataclass(frozen=True)
class FoundReport:
    """A report file found under a run: path is relative to the searched root (POSIX), never absolute; ``spec`` is
    the position of the spec it matched (reports are listed in spec order, then by path)."""

    path: str
    display: str
    mimetype: str
    size: int
    spec: int = 0


def glob_to_regex(pattern: str) -> re.Pattern[str]:
    """Translate a tower.yml glob to a regex over a relative POSIX path, with Seqera's implicit leading `**/`."""
    pat = pattern.strip().replace("\\", "/")
    while pat.startswith("./"):
        pat = pat[2:]
    pat = pat.lstrip("/")
    out: list[str] = []
    i, n, brace_depth = 0, len(pat), 0
    while i < n:
        c = pat[i]
        if pat.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pat.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            end = pat.find("]", i + 2 if pat.startswith("[!", i) or pat.startswith("[^", i) else i + 1)
            if end == -1:
                out.append(re.escape(c))
                i += 1
            else:
                body = pat[i + 1:end]
                neg = body[:1] in ("!", "^")
                body = body[1:] if neg else body
                body = body.replace("\\", "\\\\").replace("/", "")
                out.append(f"[{'^/' if neg else ''}{body}]")
                i = end + 1
        elif c == "{":
            out.append("(?:")
            brace_depth += 1
            i += 1
        elif c == "}" and brace_depth:
            out.append(")")
            brace_depth -= 1
            i += 1
        elif c == "," and brace_depth:
            out.append("|")
            i += 1
        else:
            out.append(re.escape(c))
            i += 1
    body = "".join(out) + ")" * brace_depth
    try:
        return re.compile(f"(?:.*/)?{body}", re.DOTALL)
    except re.error:
        return re.compile(f"(?:.*/)?{re.escape(pat)}")  # a malformed class: match the text literally


DEFAULT_SPECS: tuple[ReportSpec, ...] = (ReportSpec("multiqc_report.html", "MultiQC HTML report"),)


def report_globs(tower: dict[str, Any] | None) -> list[ReportSpec]:
    """The report specs of a parsed tower.yml; the default (MultiQC anywhere) when it declares none.

    tower.yml comes from a pipeline repository, so malformed entries are skipped rather than trusted or fatal.
    """
    reports = tower.get("reports") if isinstance(tower, dict) else None
    if not isinstance(reports, dict) or not reports:
        return list(DEFAULT_SPECS)
    specs: list[ReportSpec] = []
    for pattern, meta in reports.items():
        if not isinstance(pattern, str) or not pattern.strip() or len(pattern) > MAX_PATTERN_LENGTH:
            continue
        meta = meta if isinstance(meta, dict) else {}
        display = meta.get("display")
        mimetype = meta.get("mimeType", meta.get("mimetype"))
        specs.append(ReportSpec(
            pattern=pattern.strip(),
            display=str(display) if display not in (None, "") else pattern.strip(),
            mimetype=str(mimetype) if isinstance(mimetype, str) and mimetype.strip() else None,
        ))
    return specs or list(DEFAULT_SPECS)


def find_reports(run_dir_or_outdir: Path, specs: Iterable[ReportSpec] | None = None,
                 published: list[str] | None = None, *, max_files: int = MAX_WALK_FILES,
                 max_depth: int = MAX_WALK_DEPTH, link_targets: Iterable[Path] = ()) -> list[FoundReport]:
    """Reports under a root, each file once (first matching spec wins), in spec order then path order.

    With `published` (paths the run published, absolute or root-relative) only those are considered: that is what
    the run produced, not leftovers. Otherwise the root is walked, bounded, without following symlinks; a file
    symlink is kept only if it resolves inside the root or one of `link_targets` (pass the run's work dir when the
    root is an outdir published in Nextflow's default symlink mode).
    """
    root = Path(run_dir_or_outdir).resolve()
    spec_list = list(specs) if specs is not None else list(DEFAULT_SPECS)
    if not spec_list or not root.is_dir():
        return []
    bases = [PurePosixPath(Path(run_dir_or_outdir).absolute().as_posix()), PurePosixPath(root.as_posix())]
    candidates = _published_candidates(bases, published) if published is not None else _walk(root, max_files, max_depth)
    allowed = [root, *(Path(p).resolve() for p in link_targets)]
    found: list[tuple[int, str, FoundReport]] = []
    seen: set[str] = set()
    for rel in candidates:
        if rel in seen:
            continue
        for order, spec in enumerate(spec_list):
            if not spec.matches(rel):
                continue
            size = _size_inside(root, rel, allowed)
            if size is None:
                break
            seen.add(rel)
            mimetype = spec.mimetype or guess_mimetype(rel)
            found.append((order, rel, FoundReport(path=rel, display=spec.display, mimetype=mimetype, size=size,
                                                       spec=order)))
            break
    found.sort(key=lambda item: (item[0], item[1]))
    return [item[2] for item in found]


def _published_candidates(bases: list[PurePosixPath], published: list[str]) -> list[str]:
    """Root-relative POSIX paths of published files; anything outside the root or with `..` is dropped."""
    out: list[str] = []
    for raw in published:
        if not isinstance(raw, str) or not raw or "\x00" in raw:
            continue
        raw = raw.removeprefix("file://")
        pure = PurePosixPath(raw.replace("\\", "/"))
        if ".." in pure.parts:
            continue
        if pure.is_absolute():
            under = [pure.relative_to(base) for base in bases if pure.is_relative_to(base)]
            if not under:
                continue
            rel = under[0]
        else:
            rel = pure
        text = rel.as_posix()
        if text in ("", "."):
            continue
        out.append(text)
    return out


def _walk(root: Path, max_files: int, max_depth: int) -> list[str]:
    """Bounded walk: hidden dirs, Nextflow's `work/`, directory symlinks and anything past the limits are skipped."""
    out: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        rel_dir = Path(dirpath).relative_to(root)
        depth = len(rel_dir.parts)
        dirnames[:] = sorted(
            d for d in dirnames
            if not d.startswith(".") and not (depth == 0 and d in SKIP_TOP_DIRS) and depth + 1 <= max_depth
        )
        for name in sorted(filenames):
            out.append((rel_dir / name).as_posix())
            if len(out) >= max_files:
                return out
    return out


def _size_inside(root: Path, rel: str, allowed: list[Path]) -> int | None:
    """Size of a regular file that really lives under an allowed root (after resolving symlinks), else None."""
    path = root / rel
    try:
        resolved = path.resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if not any(resolved.is_relative_to(base) for base in allowed):
        return None
    try:
        st = resolved.stat()
    except OSError:
        return None
    return st.st_size if stat.S_ISREG(st.st_mode) else None
