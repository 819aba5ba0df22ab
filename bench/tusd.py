"""The reference tus server for bench/uploads.py: tusd v2.9.1, built from the Go module proxy once and cached.

``go install github.com/tus/tusd/v2/cmd/tusd@v2.9.1`` with ``GOBIN`` in ``~/.cache/flow-jupyter/tusd`` (only when
the binary is missing), then run as a child on 127.0.0.1 with its file store (``-upload-dir``).

What tusd's file store does with the bytes (pkg/filestore/filestore.go, v2.9.1): each PATCH body is copied with
``io.Copy`` into ``<id>`` opened ``O_APPEND``; the upload's offset is the file's size (``stat``) whenever it is
loaded; the upload's ``<id>.info`` JSON is written at creation (and when the length is declared later). It never
calls ``fsync`` and has no flag to make it: its acknowledged bytes are in the page cache, durable only when the
kernel writes them back. Locking is ``-filelock-*`` (a lock file per upload, polled). Flow is measured with its
fsync per acknowledged chunk, so the comparison is Flow's durability against tusd's speed.
"""
from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

TUSD_VERSION = "v2.9.1"
TUSD_MODULE = f"github.com/tus/tusd/v2/cmd/tusd@{TUSD_VERSION}"
GO = os.environ.get("GO", "/usr/local/go/bin/go")
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "flow-jupyter" / "tusd"
BASE_PATH = "/files/"


def tusd_binary() -> Path:
    """The cached tusd binary of TUSD_VERSION, built with ``go install`` the first time (a minute or two)."""
    binary = CACHE / TUSD_VERSION / "tusd"
    if binary.exists():
        return binary
    binary.parent.mkdir(parents=True, exist_ok=True)
    print(f"  building tusd {TUSD_VERSION} with {GO} install (once, into {binary.parent}) ...", flush=True)
    env = dict(os.environ, GOBIN=str(binary.parent), GOFLAGS="-mod=mod")
    done = subprocess.run([GO, "install", TUSD_MODULE], env=env, capture_output=True, text=True)
    if done.returncode != 0 or not binary.exists():
        raise SystemExit(f"go install {TUSD_MODULE} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return binary


@dataclass
class TusdServer:
    """tusd on 127.0.0.1 with its file store in ``directory``: no hooks, no CORS, downloads off, no per-request
    log lines (``-verbose=false``, so its CPU figure is not its logging's); ``GET /`` answers its greeting."""

    directory: Path
    log: Path
    port: int
    process: subprocess.Popen | None = None
    argv: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{BASE_PATH}"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.argv = [str(tusd_binary()), "-host", "127.0.0.1", "-port", str(self.port), "-base-path", BASE_PATH,
                     "-upload-dir", str(self.directory), "-disable-download", "-disable-cors", "-verbose=false"]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)
