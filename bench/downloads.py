"""Benchmark: download 1 GiB over loopback — Flow's ``/flow/api/files/<id>/content`` vs jupyter_server's ``/files/``.

One real ``jupyter server`` with Flow (fresh root, SQLite) serves both: the file is uploaded to Flow with tus (see
bench/uploads.py), and the stored file is hard-linked into the server's contents root, so both endpoints send the
very same inode (same bytes, same page cache). Each repetition downloads it once per endpoint, in alternating order,
with the token, reading the body into a reused 1 MiB buffer (a /dev/null-like sink); the byte count is checked.

    .venv/bin/python bench/downloads.py [--size-mib 1024] [--reps 5]
"""
from __future__ import annotations

import argparse
import http.client
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from uploads import HOST, MiB, JupyterServer, flow_upload, make_source, running_jupyter  # noqa: E402

TARGET = 0.9
NAME = "bench-download.bin"


def download(server: JupyterServer, path: str, size: int) -> float:
    """GET ``path`` with the token into a reused 1 MiB buffer; seconds taken (headers to last byte)."""
    buffer = memoryview(bytearray(MiB))
    conn = http.client.HTTPConnection(HOST, server.port, timeout=300)
    try:
        start = time.perf_counter()
        conn.request("GET", path, headers=server.headers())
        reply = conn.getresponse()
        if reply.status != 200:
            raise RuntimeError(f"GET {path} -> {reply.status}: {reply.read(500)!r}")
        received = 0
        while n := reply.readinto(buffer):
            received += n
        seconds = time.perf_counter() - start
    finally:
        conn.close()
    if received != size:
        raise RuntimeError(f"GET {path}: {received} bytes, expected {size}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="file size (default 1024)")
    parser.add_argument("--reps", type=int, default=5, help="downloads per endpoint (default 5)")
    args = parser.parse_args(argv)
    size = args.size_mib * MiB
    tmp = Path(tempfile.mkdtemp(prefix="flow-bench-downloads-"))
    try:
        source = tmp / "source.bin"
        make_source(source, size)
        with running_jupyter(tmp) as server:
            project = server.create_project("download-bench")
            datafile = flow_upload(server, source, project, 64 * MiB, NAME)
            source.unlink()
            stored = [p for p in server.flow_root.glob(f"uploads/*/*/*/{NAME}") if p.is_file()]
            if len(stored) != 1:
                raise SystemExit(f"expected one stored {NAME} under the Flow root, found {len(stored)}")
            os.link(stored[0], server.contents / NAME)  # the same inode behind both endpoints
            paths = {"flow": f"/flow/api/files/{datafile}/content", "jupyter": f"/files/{NAME}"}
            labels = {"flow": "flow /flow/api/files/<id>/content", "jupyter": "jupyter_server /files/<path>"}
            for key in paths:  # warm-up: page cache, imports, first-request paths
                download(server, paths[key], size)
            rates: dict[str, list[float]] = {key: [] for key in paths}
            print(f"  {args.size_mib} MiB file (data file {datafile}), {args.reps} reps; jupyter server "
                  f":{server.port}", flush=True)
            for rep in range(1, args.reps + 1):
                order = ["flow", "jupyter"] if rep % 2 else ["jupyter", "flow"]
                for key in order:
                    seconds = download(server, paths[key], size)
                    rates[key].append(size / MiB / seconds)
                    print(f"  rep {rep} {labels[key]}: {seconds:.2f} s = {size / MiB / seconds:.0f} MiB/s", flush=True)
        print()
        print(f"{'endpoint':<40}{'median MiB/s':>13}{'min':>9}{'max':>9}{'reps':>6}")
        for key, values in rates.items():
            print(f"{labels[key]:<40}{statistics.median(values):13.0f}{min(values):9.0f}{max(values):9.0f}"
                  f"{len(values):6d}")
        flow, jupyter = statistics.median(rates["flow"]), statistics.median(rates["jupyter"])
        ratio = flow / jupyter
        print()
        print(f"download: flow {flow:.0f} MiB/s = {ratio:.2f}× jupyter_server /files/ ({jupyter:.0f} MiB/s); "
              f"target ≥{TARGET}×: {'PASS' if ratio >= TARGET else 'FAIL'}")
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
