"""JSON schemas of request bodies: unknown fields are refused, so a typo is a 400 naming it, not a silent no-op."""
from __future__ import annotations

from typing import Any

NO_CONTROL = r"^[^\x00-\x1f\x7f]+$"
NAME = {"type": "string", "minLength": 1, "maxLength": 255, "pattern": NO_CONTROL}
ID = {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}
OPTIONAL_ID = {"anyOf": [ID, {"type": "null"}]}
VISIBILITY = {"enum": ["private", "group", "public"]}
LEVEL = {"enum": ["view", "edit", "share"]}


def body(properties: dict[str, Any], required: list[str] | None = None, min_properties: int = 0) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required or [], "additionalProperties": False,
            "minProperties": min_properties}


PROJECT_FIELDS = {"name": NAME, "description": {"type": "string", "maxLength": 10_000}, "visibility": VISIBILITY,
                  "group": OPTIONAL_ID}
PROJECT_CREATE = body(PROJECT_FIELDS, ["name"])
PROJECT_UPDATE = body(PROJECT_FIELDS, min_properties=1)

SAMPLE_FIELDS = {"name": NAME, "metadata": {"type": "object", "maxProperties": 1000}}
SAMPLE_CREATE = body(SAMPLE_FIELDS, ["name"])
SAMPLE_UPDATE = body(SAMPLE_FIELDS, min_properties=1)

FILE_UPDATE = body({"filename": {"type": "string", "minLength": 1, "maxLength": 1024, "pattern": NO_CONTROL},
                    "project": ID,
                    "sample": OPTIONAL_ID}, min_properties=1)

SHARE_CREATE = body({"object_type": {"enum": ["project", "datafile"]}, "object_id": ID, "user": NAME, "group": ID,
                     "level": LEVEL}, ["object_type", "object_id"])
SHARE_UPDATE = body({"level": LEVEL}, ["level"])

GROUP_CREATE = body({"name": NAME}, ["name"])
MEMBER_SET = body({"user": NAME, "role": {"enum": ["member", "admin"]}}, ["user"])

PIPELINE_CREATE = body({"source": {"type": "string", "minLength": 1, "maxLength": 2048, "pattern": NO_CONTROL},
                        "name": {"type": "string", "minLength": 1, "maxLength": 128, "pattern": NO_CONTROL},
                        "ref": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": NO_CONTROL},
                        "description": {"type": "string", "maxLength": 10_000}, "curated": {"type": "boolean"}},
                       ["source"])
VERSION_CREATE = body({"ref": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": NO_CONTROL}}, ["ref"])
PARAMS_VALIDATE = body({"params": {"type": "object"}}, ["params"])
SAMPLESHEET_VALIDATE = body({
    "rows": {"type": "array", "maxItems": 100_000, "items": {"type": "object", "maxProperties": 1000}},
    "content": {"type": "string", "maxLength": 20 * 1024 * 1024},
    "filename": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": NO_CONTROL},
    "datafile": ID,
    "save": body({"project": ID, "filename": {"type": "string", "minLength": 1, "maxLength": 255,
                                              "pattern": NO_CONTROL}}, ["project"]),
})
