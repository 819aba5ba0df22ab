"""The tus 1.0.0 protocol as pure functions: what Flow speaks, header parsing and the protocol's own answers.

tus 1.0.0 core + creation, creation-with-upload, checksum, termination and expiration (https://tus.io/protocols/
resumable-upload). Here: the version and extensions advertised, ``Upload-Length``/``Upload-Offset`` counts,
``Upload-Metadata`` pairs (Flow's own keys: ``filename``/``name``, ``project``, ``sample``, ``sha256``),
``Upload-Checksum`` and its algorithms, the offset rule (a chunk starts exactly at the upload's offset, else 409), the
body-length rule (413), the 460 of a checksum mismatch and the ``Upload-Expires`` date. No I/O, no database: the
storage side (rows, partial files, fsync, completion, expiry) is data/uploads.py, the HTTP side api/uploads.py.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from typing import Any

from ..errors import FlowError, bad_request, conflict
from .storage import safe_filename

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,creation-with-upload,checksum,termination,expiration"
CHECKSUM_ALGORITHMS: dict[str, Callable[[], Any]] = {
    "sha1": hashlib.sha1, "sha256": hashlib.sha256, "md5": hashlib.md5,
}
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"
MAX_METADATA_CHARS = 8192
CHECKSUM_MISMATCH = 460  # tus' own status code for "Checksum Mismatch"
_DIGITS = re.compile(r"[0-9]{1,19}")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_METADATA_KEY = re.compile(r"[^\s,]+")


# --- header parsing ------------------------------------------------------------------------------------------


def parse_count(raw: str | None, header: str) -> int:
    """A non-negative decimal header value (Upload-Length, Upload-Offset); 400 naming the header otherwise."""
    if raw is None:
        raise bad_request(f"The {header} header is required.", field=header, reason="missing_header")
    raw = raw.strip()
    if not _DIGITS.fullmatch(raw):
        raise bad_request(f"{header} must be a non-negative integer.", field=header, reason="invalid_header")
    return int(raw)


def parse_metadata(raw: str | None) -> dict[str, str]:
    """tus ``Upload-Metadata``: comma-separated ``key base64value`` pairs (value optional), keys unique."""
    if not raw:
        return {}
    field = "Upload-Metadata"
    if len(raw) > MAX_METADATA_CHARS:
        raise bad_request(f"Upload-Metadata is longer than {MAX_METADATA_CHARS} characters.", field=field)
    pairs: dict[str, str] = {}
    for item in raw.split(","):
        parts = item.strip().split(" ")
        key = parts[0]
        if not _METADATA_KEY.fullmatch(key) or len(parts) > 2:
            raise bad_request("Upload-Metadata must be comma-separated 'key base64value' pairs.", field=field)
        if key in pairs:
            raise bad_request(f"Upload-Metadata key '{key}' appears twice.", field=f"{field}/{key}")
        try:
            value = base64.b64decode(parts[1], validate=True).decode("utf-8") if len(parts) == 2 else ""
        except (binascii.Error, UnicodeDecodeError):
            raise bad_request(f"Upload-Metadata '{key}' is not base64 of UTF-8 text.",
                              field=f"{field}/{key}") from None
        pairs[key] = value
    return pairs


def parse_checksum(raw: str | None) -> tuple[str, bytes] | None:
    """tus ``Upload-Checksum: <algorithm> <base64 digest>``; 400 for an unsupported algorithm or bad digest."""
    if raw is None:
        return None
    field = "Upload-Checksum"
    algorithm, _, encoded = raw.strip().partition(" ")
    algorithm = algorithm.lower()
    if algorithm not in CHECKSUM_ALGORITHMS:
        raise bad_request(f"Checksum algorithm '{algorithm}' is not supported (use "
                          f"{', '.join(CHECKSUM_ALGORITHMS)}).", field=field, reason="unsupported_checksum")
    try:
        digest = base64.b64decode(encoded.strip(), validate=True)
    except binascii.Error:
        raise bad_request("Upload-Checksum digest is not base64.", field=field) from None
    if len(digest) != CHECKSUM_ALGORITHMS[algorithm]().digest_size:
        raise bad_request(f"Upload-Checksum digest has the wrong length for {algorithm}.", field=field)
    return algorithm, digest


def _metadata_int(metadata: dict[str, str], key: str, required: bool) -> int | None:
    field = f"Upload-Metadata/{key}"
    value = metadata.get(key)
    if value is None or value == "":
        if required:
            raise bad_request(f"Upload-Metadata must name the target {key} ('{key}' key).", field=field,
                              reason="missing_field")
        return None
    if not _DIGITS.fullmatch(value.strip()) or int(value) > 2**31 - 1:
        raise bad_request(f"Upload-Metadata '{key}' must be an integer id.", field=field, reason="invalid_field")
    return int(value)


@dataclass(frozen=True)
class NewUpload:
    """A validated creation request: what the client asked for, before any permission or limit check."""

    length: int
    filename: str
    project_id: int
    sample_id: int | None
    sha256: str | None
    tus_metadata: str


def new_upload_request(length: str | None, defer_length: str | None, metadata: str | None,
                       max_bytes: int) -> NewUpload:
    """Validate the creation headers (Upload-Length, Upload-Metadata); 400/413 naming the bad header."""
    if defer_length is not None:
        raise bad_request("Upload-Defer-Length is not supported: send Upload-Length.",
                          field="Upload-Defer-Length", reason="defer_length_unsupported")
    size = parse_count(length, "Upload-Length")
    if size > max_bytes:
        raise FlowError(413, "too_large", f"Uploads may be at most {max_bytes} bytes.", "Upload-Length")
    pairs = parse_metadata(metadata)
    raw_name = pairs.get("filename") or pairs.get("name")  # Uppy sends 'name'
    if not raw_name:
        raise bad_request("Upload-Metadata must carry the file's name ('filename' key).",
                          field="Upload-Metadata/filename", reason="missing_field")
    project_id = _metadata_int(pairs, "project", required=True)
    sample_id = _metadata_int(pairs, "sample", required=False)
    sha256 = pairs.get("sha256", "").strip().lower() or None
    if sha256 is not None and not _SHA256_HEX.fullmatch(sha256):
        raise bad_request("Upload-Metadata 'sha256' must be 64 hex digits.", field="Upload-Metadata/sha256",
                          reason="invalid_field")
    assert project_id is not None
    return NewUpload(length=size, filename=safe_filename(raw_name), project_id=project_id, sample_id=sample_id,
                     sha256=sha256, tus_metadata=(metadata or "").strip())


# --- the protocol's answers ---------------------------------------------------------------------------------------


def check_offset(offset: int, current: int) -> None:
    """A chunk must start at the upload's offset: 409, telling the client to read it again with HEAD."""
    if offset != current:
        raise conflict(f"Upload-Offset {offset} is not the upload's offset {current}; read it with HEAD.",
                       field="Upload-Offset", reason="offset_mismatch")


def check_body_length(content_length: int | None, remaining: int) -> None:
    """A declared body longer than what is left of the upload: 413 before a byte is read."""
    if content_length is not None and content_length > remaining:
        raise FlowError(413, "too_large", f"The body has {content_length} bytes but only {remaining} are "
                        "left in this upload.", "Content-Length")


def chunk_checksum_mismatch(algorithm: str) -> FlowError:
    """460: the chunk does not match its Upload-Checksum (it was discarded)."""
    return FlowError(CHECKSUM_MISMATCH, "checksum_mismatch", f"The chunk does not match its {algorithm} "
                     "Upload-Checksum; it was discarded.", "Upload-Checksum")


def file_checksum_mismatch() -> FlowError:
    """460: the whole file does not match the ``sha256`` declared in Upload-Metadata (the upload was removed)."""
    return FlowError(CHECKSUM_MISMATCH, "checksum_mismatch", "The file's sha256 does not match the 'sha256' "
                     "given at creation; the upload was removed, start it again.", "Upload-Metadata/sha256")


def expires_header(moment: datetime) -> str:
    """``Upload-Expires``: an RFC 7231 IMF-fixdate, as tus' expiration extension asks."""
    return format_datetime(moment, usegmt=True)


__all__ = [
    "CHECKSUM_ALGORITHMS", "CHECKSUM_MISMATCH", "MAX_METADATA_CHARS", "OFFSET_CONTENT_TYPE", "TUS_EXTENSIONS",
    "TUS_VERSION", "NewUpload", "check_body_length", "check_offset", "chunk_checksum_mismatch", "expires_header",
    "file_checksum_mismatch", "new_upload_request", "parse_checksum", "parse_count", "parse_metadata",
]
