"""How a Flow data file is named in text: ``flow://datafile/7`` (what the server accepts) or ``datafile:7``.

Typed into a launch form or a ``%flow`` command line, such a text becomes the reference ``{"datafile": 7}``.
"""
from __future__ import annotations

import re

DATAFILE_TEXT = re.compile(r"(?:flow://datafile/|datafile:)([1-9][0-9]{0,17})")


def datafile_reference(text: str) -> dict[str, int] | None:
    """``{"datafile": id}`` when ``text`` (spaces aside) names a data file, else None."""
    match = DATAFILE_TEXT.fullmatch(text.strip())
    return {"datafile": int(match.group(1))} if match else None
