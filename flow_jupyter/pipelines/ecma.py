"""ECMA-262 regular expressions for JSON Schema's ``pattern``, ``patternProperties`` and ``format: regex``.

JSON Schema defines its patterns as ECMA-262 (JavaScript) regular expressions, and nf-core writes them for that
dialect. Python's ``re`` differs exactly where validation cares: ``$`` also matches before a trailing newline
(``"ok\\n"`` passes ``^ok$``) and ``\\d``/``\\w`` match any Unicode digit or letter (``"١٢"`` passes ``^\\d+$``).
A sample name that passes here but not in the pipeline, or the reverse, is a bug either way, so patterns are run
by ``regress``, the Rust ECMA-262 engine jsonschema-rs uses, never by ``re``.

Dialect: Unicode mode (the ``u`` flag, as JSON Schema's test suite expects: ``\\p{L}`` works, ``\\a`` is an
error) first; a pattern only valid without it (``\\-`` outside a class, common in hand-written schemas) is compiled
in the legacy syntax every JavaScript engine accepts for ``new RegExp(p)``, except that escaping a letter with no
ECMA meaning (Python's ``\\A``, ``\\Z``, PCRE's ``\\h``) is refused instead of silently matching the letter.
Python-only syntax (``(?P<name>…)``, ``(?i)``) is refused by the engine itself.
"""
from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from typing import Any

import regress
from jsonschema import FormatChecker, validators
from jsonschema.exceptions import SchemaError, ValidationError
from jsonschema.protocols import Validator

MAX_CACHED_PATTERNS = 4096
"""Compiled patterns kept: a sheet of 10,000 rows checks each column's pattern 10,000 times."""

_LEGACY_LETTER_ESCAPES = frozenset("bBdDsSwWfnrtvcxuk")
"""Letters a backslash may precede without the ``u`` flag; any other ``\\<letter>`` is an identity escape in
legacy syntax (``\\Z`` matches "Z"), which never is what a schema author meant."""


class PatternError(ValueError):
    """A pattern that is not a valid ECMA-262 regular expression (a ValueError, so validators report it)."""


@lru_cache(maxsize=MAX_CACHED_PATTERNS)
def compile_pattern(pattern: str) -> regress.Regex:
    """The compiled pattern; PatternError naming the pattern if neither dialect accepts it."""
    try:
        return regress.Regex(pattern, "u")
    except regress.RegressError as unicode_error:
        first = unicode_error
    letter = _letter_identity_escape(pattern)
    if letter is not None:
        raise PatternError(f"{pattern!r} is not an ECMA-262 regular expression: \\{letter} has no meaning "
                           f"there ({first})")
    try:
        return regress.Regex(pattern)
    except regress.RegressError:
        raise PatternError(f"{pattern!r} is not an ECMA-262 regular expression ({first})") from None


def _letter_identity_escape(pattern: str) -> str | None:
    """The first ``\\<letter>`` that legacy syntax would read as the plain letter, if any."""
    index = 0
    while index < len(pattern) - 1:
        if pattern[index] == "\\":
            following = pattern[index + 1]
            if following.isascii() and following.isalpha() and following not in _LEGACY_LETTER_ESCAPES:
                return following
            index += 2
        else:
            index += 1
    return None


def search(pattern: str, text: str) -> bool:
    """Whether ``pattern`` matches anywhere in ``text`` (JSON Schema patterns are not anchored)."""
    regex = compile_pattern(pattern)
    try:
        return regex.find(text) is not None
    except UnicodeEncodeError:
        # A lone surrogate (possible in JSON text) cannot reach the engine; it matches as U+FFFD would.
        return regex.find(text.encode("utf-8", "replace").decode("utf-8")) is not None


def is_pattern(value: object) -> bool:
    """``format: regex``: non-strings pass (format only constrains strings), strings must compile."""
    if not isinstance(value, str):
        return True
    try:
        compile_pattern(value)
    except PatternError:
        return False
    return True


# --- jsonschema keywords --------------------------------------------------------------------------------------

def pattern_keyword(validator: Validator, pattern: str, instance: Any, schema: dict[str, Any]
                    ) -> Iterator[ValidationError]:
    """``pattern`` with ECMA-262 semantics (same message as jsonschema's own, so error wording is unchanged)."""
    if validator.is_type(instance, "string") and not search(pattern, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def pattern_properties_keyword(validator: Validator, patterns: dict[str, Any], instance: Any,
                               schema: dict[str, Any]) -> Iterator[ValidationError]:
    """``patternProperties``: every property whose name matches a pattern is checked against its subschema."""
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for name, value in instance.items():
            if search(pattern, name):
                yield from _descend(validator, value, subschema, path=name, schema_path=pattern)


def additional_properties_keyword(validator: Validator, additional: Any, instance: Any,
                                  schema: dict[str, Any]) -> Iterator[ValidationError]:
    """``additionalProperties``: which names are "additional" depends on ``patternProperties``, so on ECMA."""
    if not validator.is_type(instance, "object"):
        return
    extras = sorted(_additional_names(instance, schema), key=str)
    if validator.is_type(additional, "object"):
        for name in extras:
            yield from _descend(validator, instance[name], additional, path=name)
    elif additional is False and extras:
        shown = ", ".join(repr(name) for name in extras)
        if "patternProperties" in schema:
            verb = "does" if len(extras) == 1 else "do"
            patterns = ", ".join(repr(p) for p in sorted(schema["patternProperties"]))
            yield ValidationError(f"{shown} {verb} not match any of the regexes: {patterns}")
        else:
            verb = "was" if len(extras) == 1 else "were"
            yield ValidationError(f"Additional properties are not allowed ({shown} {verb} unexpected)")


def _descend(validator: Validator, instance: Any, schema: Any, **where: Any) -> Iterator[ValidationError]:
    """``validator.descend``: every validator class has it, but jsonschema's Validator protocol (and stub) omit it."""
    return validator.descend(instance, schema, **where)  # type: ignore[attr-defined]


def _additional_names(instance: dict[str, Any], schema: dict[str, Any]) -> Iterator[str]:
    properties = schema.get("properties", {})
    patterns = schema.get("patternProperties", {})
    for name in instance:
        if name not in properties and not any(search(pattern, name) for pattern in patterns):
            yield name


# --- validator classes ----------------------------------------------------------------------------------------

def format_checker(base: FormatChecker | None = None) -> FormatChecker:
    """``base``'s checks (default: every format jsonschema knows) with ``regex`` judged by ECMA-262."""
    checker = FormatChecker()
    if base is not None:
        checker.checkers = dict(base.checkers)
    checker.checks("regex")(is_pattern)
    return checker


def ecma_validator(base: type[Validator]) -> type[Validator]:
    """``base`` (Draft7Validator, Draft202012Validator) with ECMA-262 patterns, in schemas and in meta-schema checks.

    jsonschema's ``check_schema`` judges ``pattern`` values with ``re.compile``, which would refuse valid ECMA
    (``(?<name>…)``, ``\\p{L}``) and accept Python-only syntax; the class returned checks them as ECMA instead.
    """
    cls = validators.extend(base, validators={
        "pattern": pattern_keyword,
        "patternProperties": pattern_properties_keyword,
        "additionalProperties": additional_properties_keyword,
    })
    meta_checker = format_checker(base.FORMAT_CHECKER)

    def check_schema(schema: dict[str, Any], format_checker: FormatChecker | None = meta_checker) -> None:
        meta = base(base.META_SCHEMA, format_checker=format_checker)  # the meta-schema's own patterns are plain
        for error in meta.iter_errors(schema):
            raise SchemaError.create_from(error)

    cls.check_schema = staticmethod(check_schema)
    return cls
