"""Response headers for serving a report file (MultiQC, FastQC, any pipeline HTML) to a browser.

A report is pipeline output: its HTML and scripts are untrusted. It must run (MultiQC is a JS app with inline
scripts, inline styles, data: images and blob: downloads) but in an opaque origin, so it can never read the Jupyter
cookie/XSRF token or call the API as the user. Hence `sandbox allow-scripts` and never `allow-same-origin`.
"""
from __future__ import annotations

import mimetypes
import re
from pathlib import PurePosixPath

# Extensions we serve often; stdlib mimetypes depends on the host's /etc/mime.types, so pin the important ones.
_MIMETYPES: dict[str, str] = {
    ".html": "text/html", ".htm": "text/html", ".txt": "text/plain", ".log": "text/plain",
    ".csv": "text/csv", ".tsv": "text/tab-separated-values", ".json": "application/json",
    ".yml": "text/plain", ".yaml": "text/plain", ".pdf": "application/pdf", ".png": "image/png",
    ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif", ".svg": "image/svg+xml",
    ".zip": "application/zip", ".gz": "application/gzip", ".rds": "application/octet-stream",
    ".r": "text/plain", ".md": "text/plain", ".stats": "text/plain",
}
_TEXT_PREFIXES = ("text/",)
_TEXT_TYPES = {"application/json", "image/svg+xml"}
_MIME_RE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}")

# sandbox: opaque origin (no allow-same-origin), scripts allowed so the report works, popups for its external
# links, downloads for its "export plot/data" buttons. Popups inherit the sandbox: never
# allow-popups-to-escape-sandbox, with which a report could open a page of the Jupyter origin as a normal window,
# running with the user's cookie; an external link still opens, only sandboxed (a site may miss its storage there).
# The fetch directives keep every load local to the document itself: no default-src remote hosts, so an offline
# report cannot beacon data out; `connect-src 'none'` blocks XHR/fetch/WebSocket (MultiQC's opt-in AI feature and
# any phone-home); form-action/base-uri stop redirect tricks; frame-ancestors 'self' lets only our own UI embed it.
REPORT_CSP = "; ".join([
    "sandbox allow-scripts allow-popups allow-downloads",
    "default-src 'none'",
    "script-src 'unsafe-inline' 'unsafe-eval' data: blob:",
    "style-src 'unsafe-inline' data: blob:",
    "img-src data: blob:",
    "font-src data:",
    "media-src data: blob:",
    "worker-src blob:",
    "connect-src 'none'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'self'",
])


def guess_mimetype(filename: str) -> str:
    """Content type by extension only: never sniff content, that is what nosniff forbids the browser to do too."""
    suffix = PurePosixPath(filename).suffix.lower()
    if suffix in _MIMETYPES:
        return _MIMETYPES[suffix]
    guessed, _ = mimetypes.guess_type(filename, strict=False)
    return guessed or "application/octet-stream"


def report_headers(filename: str, mimetype: str | None = None) -> dict[str, str]:
    """Headers to send with a report file; `mimetype` (e.g. tower.yml's mimeType) overrides the extension guess.

    The sandbox CSP is sent for every type, not only HTML: an SVG or a mislabelled file opened directly must not run
    with the Jupyter origin either.
    """
    base = (mimetype or "").strip().lower()
    if not _MIME_RE.fullmatch(base):
        base = guess_mimetype(filename)  # a pipeline-provided value must not smuggle header syntax or params
    ctype = f"{base}; charset=utf-8" if base.startswith(_TEXT_PREFIXES) or base in _TEXT_TYPES else base
    return {
        "Content-Type": ctype,
        "Content-Security-Policy": REPORT_CSP,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cross-Origin-Resource-Policy": "same-origin",
        "X-Frame-Options": "SAMEORIGIN",
        "Cache-Control": "private, no-cache",
    }


# MultiQC ≥ 1.2x reads window.localStorage at start-up; in an opaque-origin sandbox that getter throws
# SecurityError, which aborts MultiQC's scripts (no bootstrap, no plots). Rather than ever granting
# allow-same-origin, give the page a per-load, in-memory Storage (and an empty, write-ignoring document.cookie). Verified with MultiQC 1.35 in Chromium.
STORAGE_SHIM = (
    b"<script>(function(){function M(){var d=new Map();return{get length(){return d.size},"
    b"key:function(i){return Array.from(d.keys())[i]===undefined?null:Array.from(d.keys())[i]},"
    b"getItem:function(k){k=String(k);return d.has(k)?d.get(k):null},"
    b"setItem:function(k,v){d.set(String(k),String(v))},removeItem:function(k){d.delete(String(k))},"
    b"clear:function(){d.clear()}}}"
    b"['localStorage','sessionStorage'].forEach(function(n){try{void window[n]}catch(e){"
    b"try{Object.defineProperty(window,n,{value:M(),configurable:true})}catch(e2){}}});"
    b"try{void document.cookie}catch(e){try{Object.defineProperty(document,'cookie',"
    b"{get:function(){return ''},set:function(){},configurable:true})}catch(e2){}}})();</script>"
)
_HEAD_RE = re.compile(rb"<head(\s[^>]*)?>", re.IGNORECASE)


def sandbox_html(body: bytes) -> bytes:
    """Prepare report HTML for the opaque-origin sandbox: insert the storage shim first thing in <head>.

    Only adds a script; it cannot widen what the sandbox or CSP allow.
    """
    m = _HEAD_RE.search(body, 0, 65536)
    if m is None:
        return STORAGE_SHIM + body
    return body[:m.end()] + STORAGE_SHIM + body[m.end():]
