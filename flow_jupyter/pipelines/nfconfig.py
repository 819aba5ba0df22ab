"""What a pipeline's ``nextflow.config`` says about its parameters, read without running Nextflow.

nf-schema treats a parameter as known when the schema declares it, when the config's ``validation.ignoreParams``
or ``validation.defaultIgnoreParams`` name it (or a ``name.`` prefix of it), and (for its own warning) when the
config defines it; ``validation.failUnrecognisedParams = true`` turns unknown parameters into errors for that
pipeline. nf-validation 1.x said the same with ``params.validationSchemaIgnoreParams = 'a,b'`` and
``params.validationFailUnrecognisedParams``. Starting a JVM for ``nextflow config`` at every validation would cost
seconds, so this is a small static reader of the file's own text: ``includeConfig`` files and values computed by
Groovy are not followed (a parameter only they define is reported as unknown, which is a warning by default).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

MAX_CONFIG_BYTES = 1024 * 1024
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_STRINGS = re.compile(r"'(?:\\.|[^'\\])*'|\"(?:\\.|[^\"\\])*\"")
_COMMENTS = re.compile(r"//[^\n]*|/\*.*?\*/", re.S)


@dataclass(frozen=True)
class ConfigParams:
    """Parameter names the config defines, the names nf-schema is told to ignore, and its strictness."""

    defined: frozenset[str] = frozenset()
    ignored: tuple[str, ...] = ()
    fail_unrecognised: bool | None = None

    def knows(self, name: str) -> bool:
        return name in self.defined or any(name == entry or name.startswith(entry + ".") for entry in self.ignored)


def _strip_comments(text: str) -> str:
    """Comments out, strings kept (a ``//`` inside a URL string is not a comment)."""
    out, pos = [], 0
    pattern = re.compile(_STRINGS.pattern + "|" + _COMMENTS.pattern, re.S)
    for match in pattern.finditer(text):
        out.append(text[pos:match.start()])
        token = match.group()
        out.append(token if token[0] in "'\"" else (" " if token.startswith("//") else "\n" * token.count("\n")))
        pos = match.end()
    out.append(text[pos:])
    return "".join(out)


def _blocks(text: str, name: str) -> list[str]:
    """The bodies of every top-level ``name { ... }`` block (braces inside strings ignored)."""
    bodies = []
    for match in re.finditer(rf"(?m)^\s*{name}\s*\{{", text):
        depth, pos = 1, match.end()
        while pos < len(text) and depth:
            string = _STRINGS.match(text, pos)
            if string:
                pos = string.end()
                continue
            depth += {"{": 1, "}": -1}.get(text[pos], 0)
            pos += 1
        bodies.append(text[match.end():pos - 1])
    return bodies


def _top_level_assignments(body: str) -> dict[str, str]:
    """``name = value`` at depth 0 of a block body (nested blocks skipped), value as its source text."""
    found: dict[str, str] = {}
    depth = 0
    for line in body.splitlines():
        if depth == 0:
            match = re.match(rf"\s*({_IDENT})\s*=\s*(.*)$", line)
            if match:
                found[match.group(1)] = match.group(2).strip()
        depth += line.count("{") - line.count("}")
        depth = max(depth, 0)
    return found


def _names(value: str) -> list[str]:
    """``['a', "b"]`` or ``'a,b'`` as names."""
    strings = [s[1:-1] for s in _STRINGS.findall(value)]
    if value.lstrip().startswith("["):
        return [s.strip() for s in strings if s.strip()]
    return [part.strip() for s in strings for part in s.split(",") if part.strip()]


def _bool(value: str | None) -> bool | None:
    if value is None:
        return None
    word = value.strip().strip("'\"").lower()
    return True if word == "true" else False if word == "false" else None


def parse_config(text: str) -> ConfigParams:
    text = _strip_comments(text)
    params: dict[str, str] = {}
    for body in _blocks(text, "params"):
        params.update(_top_level_assignments(body))
    params.update({m.group(1): m.group(2).strip() for m in re.finditer(rf"(?m)^\s*params\.({_IDENT})\s*=\s*(.*)$",
                                                                        text)})
    validation: dict[str, str] = {}
    for body in _blocks(text, "validation"):
        validation.update(_top_level_assignments(body))
    validation.update({m.group(1): m.group(2).strip()
                       for m in re.finditer(rf"(?m)^\s*validation\.({_IDENT})\s*=\s*(.*)$", text)})
    ignored = [*_names(validation.get("ignoreParams", "")), *_names(validation.get("defaultIgnoreParams", "")),
               *_names(params.get("validationSchemaIgnoreParams", ""))]
    strict = _bool(validation.get("failUnrecognisedParams"))
    if strict is None:
        strict = _bool(params.get("validationFailUnrecognisedParams"))
    return ConfigParams(defined=frozenset(params), ignored=tuple(dict.fromkeys(ignored)), fail_unrecognised=strict)


@lru_cache(maxsize=256)
def _cached(path: str, mtime_ns: int, size: int) -> ConfigParams:
    with open(path, "rb") as handle:
        return parse_config(handle.read(MAX_CONFIG_BYTES).decode("utf-8", "replace"))


def read_config_params(pipeline_dir: Path) -> ConfigParams:
    """The pipeline checkout's nextflow.config, parsed once per file version (a checkout never changes)."""
    path = Path(pipeline_dir) / "nextflow.config"
    try:
        info = path.stat()
    except OSError:
        return ConfigParams()
    if not path.is_file() or path.is_symlink():
        return ConfigParams()
    return _cached(str(path), info.st_mtime_ns, info.st_size)


__all__ = ["ConfigParams", "parse_config", "read_config_params"]
