"""The one reader of Nextflow configuration text: what a pipeline's config says about its parameters.

Two ways in. :func:`parse_config_flat` reads the output of ``nextflow config -flat`` (``params.x = 'y'`` lines,
values as Groovy literals, read by :func:`parse_groovy_literal`; nothing is evaluated): the defaults of a pipeline
without ``nextflow_schema.json``, which the registry stores as the version's ``config_params``.
:func:`read_config_params` reads a checkout's ``nextflow.config`` itself, statically, for the rules below.

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
from typing import Any

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
    strings = [str(parse_groovy_literal(s)) for s in _STRINGS.findall(value)]
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


# --- `nextflow config -flat` and Groovy literals -----------------------------------------------------------------

def parse_config_flat(text: str, *, scope: str | None = "params") -> dict[str, Any]:
    """``nextflow config -flat`` output (``params.x = 'y'`` lines) as values; only ``scope`` keys, prefix removed.

    Values are Groovy literals as Nextflow renders them: quoted strings (with ``\\'``, ``\\n``... escapes),
    numbers, ``true``/``false``/``null``, lists ``['a', 'b']`` and maps ``[a:1, b:'x']``. Anything else (an
    expression such as ``2.GB`` in a main.nf) is kept as its text. ``scope=None`` keeps every key unchanged.
    """
    prefix = f"{scope}." if scope else ""
    values: dict[str, Any] = {}
    for line in text.splitlines():
        key, sep, raw = line.partition(" = ")
        key = key.strip()
        if not sep or not key or key.startswith(("//", "#")) or not key.startswith(prefix):
            continue
        name = key[len(prefix):]
        if name:
            values[name] = parse_groovy_literal(raw.strip())
    return values


def parse_groovy_literal(text: str) -> Any:
    """One Groovy literal; text that is not one (or not entirely one) is returned as the string it is."""
    try:
        value, end = _GroovyLiteral(text).parse(0, depth=0)
    except ValueError:
        return text
    return value if end == len(text) else text


class _GroovyLiteral:
    """A small recursive-descent reader for the literals ``config -flat`` prints; nothing is evaluated."""

    _NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][+-]?\d+)?([lLgGiIdDfF])?")
    _WORD = re.compile(r"true|false|null")
    _KEY = re.compile(r"[A-Za-z_$][A-Za-z0-9_$.-]*")
    _ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "'": "'", '"': '"', "\\": "\\", "$": "$",
                "/": "/"}
    MAX_DEPTH = 32

    def __init__(self, text: str):
        self.text = text

    def parse(self, pos: int, depth: int) -> tuple[Any, int]:
        if depth > self.MAX_DEPTH or pos >= len(self.text):
            raise ValueError("no value")
        char = self.text[pos]
        if char in "'\"":
            return self._string(pos)
        if char == "[":
            return self._collection(pos, depth)
        word = self._WORD.match(self.text, pos)
        if word:
            return {"true": True, "false": False, "null": None}[word.group()], word.end()
        number = self._NUMBER.match(self.text, pos)
        if number:
            literal = number.group()
            suffix = number.group(3) or ""
            digits = literal[: len(literal) - len(suffix)]
            if number.group(1) or number.group(2) or suffix in ("d", "D", "f", "F"):
                return float(digits), number.end()
            return int(digits), number.end()
        raise ValueError("not a literal")

    def _string(self, pos: int) -> tuple[str, int]:
        quote = self.text[pos]
        out: list[str] = []
        i = pos + 1
        while i < len(self.text):
            char = self.text[i]
            if char == quote:
                return "".join(out), i + 1
            if char == "\\" and i + 1 < len(self.text):
                following = self.text[i + 1]
                if following == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", self.text[i + 2:i + 6]):
                    out.append(chr(int(self.text[i + 2:i + 6], 16)))
                    i += 6
                    continue
                out.append(self._ESCAPES.get(following, "\\" + following))
                i += 2
                continue
            out.append(char)
            i += 1
        raise ValueError("unterminated string")

    def _skip(self, pos: int) -> int:
        while pos < len(self.text) and self.text[pos] == " ":
            pos += 1
        return pos

    def _collection(self, pos: int, depth: int) -> tuple[Any, int]:
        pos = self._skip(pos + 1)
        if self.text.startswith(":]", pos):
            return {}, pos + 2
        if self.text.startswith("]", pos):
            return [], pos + 1
        items: list[Any] = []
        mapping: dict[str, Any] = {}
        is_map: bool | None = None
        while True:
            key, after_key = self._map_key(pos)
            if is_map is None:
                is_map = key is not None
            if is_map:
                if key is None:
                    raise ValueError("mixed list and map")
                value, pos = self.parse(self._skip(after_key), depth + 1)
                mapping[key] = value
            else:
                value, pos = self.parse(pos, depth + 1)
                items.append(value)
            pos = self._skip(pos)
            if self.text.startswith("]", pos):
                return (mapping if is_map else items), pos + 1
            if not self.text.startswith(",", pos):
                raise ValueError("expected , or ]")
            pos = self._skip(pos + 1)

    def _map_key(self, pos: int) -> tuple[str | None, int]:
        if pos < len(self.text) and self.text[pos] in "'\"":
            try:
                key, end = self._string(pos)
            except ValueError:
                return None, pos
        else:
            match = self._KEY.match(self.text, pos)
            if not match or match.group() in ("true", "false", "null"):
                return None, pos
            key, end = match.group(), match.end()
        end = self._skip(end)
        if self.text.startswith(":", end):
            return key, end + 1
        return None, pos


__all__ = ["ConfigParams", "parse_config", "parse_config_flat", "parse_groovy_literal", "read_config_params"]
