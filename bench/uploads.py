"""Benchmark: upload 1 GiB over loopback — Flow's tus endpoint vs JupyterLab's upload path and a bare tornado PUT.

Every peer is measured in the same run, against the same source file and the same disk (one temporary directory):

* **flow** — ``POST /flow/api/uploads`` then ``PATCH`` chunks of ``--chunk-mib`` (64 MiB), each streamed from the
  file with ``sendfile`` by a small ``http.client`` client (no chunk is ever held in memory); the last PATCH
  completes the upload (running sha256, rename, data file registered).
* **tuspy** — the stock tus client (``tusclient``) with the same chunk size: an extra line, not a target.
* **jupyterlab** — jupyter_server's contents API exactly as JupyterLab 4's uploader drives it: ``PUT
  /api/contents/<path>`` with ``{"type": "file", "format": "base64", "name", "chunk": n, "content"}`` in 1 MiB
  chunks numbered 1, 2, … and ``-1`` on the last, one after the other.
* **bare tornado** — the ceiling of our stack: a tiny ``@stream_request_body`` PUT app (this file, started again
  in a subprocess) that ``pwrite``s each piece at the request's offset and fsyncs before answering, fed by the same
  client with the same chunks — the fsync policy of Flow's PATCH (one fsync per acknowledged request).
* **disk+fsync** — dd-like: 1 MiB writes of the same bytes to a file, fsync after every chunk.

    .venv/bin/python bench/uploads.py [--size-mib 1024] [--reps 3] [--chunk-mib 64]

Servers are subprocesses on 127.0.0.1 only, stopped at the end; the temporary directory is removed.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MiB = 1 << 20
HOST = "127.0.0.1"
JLAB_CHUNK = 1 * MiB  # JupyterLab 4's CHUNK_SIZE (packages/filebrowser/src/model.ts)
TARGET_JLAB = 5.0
TARGET_BARE = 0.8
REPO = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------- servers


def free_port() -> int:
    """An unused loopback port."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def wait_http(port: int, path: str, headers: dict[str, str], process: subprocess.Popen, log: Path,
              timeout: float = 90.0) -> None:
    """Poll ``GET path`` until it answers 200; fail with the log if the process dies or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        try:
            conn = http.client.HTTPConnection(HOST, port, timeout=2)
            conn.request("GET", path, headers=headers)
            status = conn.getresponse().status
            conn.close()
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"server did not answer within {timeout:.0f} s:\n{log.read_text()[-4000:]}")


def stop_process(process: subprocess.Popen | None) -> None:
    """SIGTERM, then SIGKILL after 30 s."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=30)


@dataclass
class JupyterServer:
    """A real ``jupyter server`` child with Flow enabled (by its installed config) on a fresh root and SQLite."""

    workdir: Path
    token: str = field(default_factory=lambda: secrets.token_hex(24))
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    extra_args: list[str] = field(default_factory=list)

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.flow_root / 'flow.sqlite'}"

    @property
    def contents(self) -> Path:
        return self.workdir / "contents"

    @property
    def flow_root(self) -> Path:
        return self.workdir / "flow-root"

    @property
    def log(self) -> Path:
        return self.workdir / "jupyter-server.log"

    def headers(self, **extra: str) -> dict[str, str]:
        return {"Authorization": f"token {self.token}", **extra}

    def start(self) -> None:
        self.contents.mkdir(parents=True, exist_ok=True)
        self.flow_root.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "jupyter_server", "--no-browser", f"--port={self.port}",
                "--ServerApp.port_retries=0", f"--ServerApp.ip={HOST}", f"--ServerApp.token={self.token}",
                f"--ServerApp.root_dir={self.contents}", f"--FlowSettings.root_dir={self.flow_root}",
                f"--FlowSettings.database_url={self.database_url}", *self.extra_args]
        if os.geteuid() == 0:
            argv.append("--allow-root")
        env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(self.workdir / "runtime"),
                   JUPYTER_CONFIG_DIR=str(self.workdir / "config"))
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.workdir,
                                            start_new_session=True)
        wait_http(self.port, "/api/status", self.headers(), self.process, self.log)

    def stop(self) -> None:
        stop_process(self.process)

    def json(self, method: str, path: str, body: Any = None) -> Any:
        """One JSON API call with the token."""
        conn = http.client.HTTPConnection(HOST, self.port, timeout=60)
        try:
            conn.request(method, path, body=None if body is None else json.dumps(body),
                         headers=self.headers(**{"Content-Type": "application/json"}))
            reply = conn.getresponse()
            data = reply.read()
            if reply.status >= 300:
                raise RuntimeError(f"{method} {path} -> {reply.status}: {data[:500]!r}")
            return json.loads(data) if data else None
        finally:
            conn.close()

    def create_project(self, name: str) -> int:
        """Register a project through Flow's API (the upload's ``project`` metadata)."""
        return int(self.json("POST", "/flow/api/projects", {"name": name})["id"])


@contextlib.contextmanager
def running_jupyter(workdir: Path) -> Iterator[JupyterServer]:
    server = JupyterServer(workdir)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@dataclass
class BareServer:
    """This file in ``--serve-bare`` mode: the bare tornado @stream_request_body PUT peer."""

    directory: Path
    log: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    def start(self) -> None:
        argv = [sys.executable, str(Path(__file__).resolve()), "--serve-bare", str(self.directory),
                "--port", str(self.port)]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_http(self.port, "/ping", {}, self.process, self.log)

    def stop(self) -> None:
        stop_process(self.process)


def serve_bare(directory: Path, port: int) -> None:
    """Run the bare PUT app: stream the body to ``<directory>/<name>`` at ``Upload-Offset``, fsync, answer 204."""
    from tornado import httpserver, web

    class Ping(web.RequestHandler):
        def get(self) -> None:
            self.write("ok")

    @web.stream_request_body
    class Put(web.RequestHandler):
        fd = -1
        position = 0

        def prepare(self) -> None:
            self.request.connection.set_max_body_size(1 << 40)
            self.position = int(self.request.headers["Upload-Offset"])
            name = os.path.basename(self.path_args[0])
            self.fd = os.open(directory / name, os.O_WRONLY | os.O_CREAT, 0o600)

        def data_received(self, chunk: bytes) -> None:
            view = memoryview(chunk)
            written = 0
            while written < len(view):
                written += os.pwrite(self.fd, view[written:], self.position + written)
            self.position += written

        async def put(self, name: str) -> None:
            await asyncio.to_thread(os.fsync, self.fd)  # durable before the acknowledgement, as Flow's PATCH
            self.set_header("Upload-Offset", str(self.position))
            self.set_status(204)
            self.finish()

        def on_finish(self) -> None:
            if self.fd >= 0:
                os.close(self.fd)
                self.fd = -1

    async def main() -> None:
        app = web.Application([(r"/ping", Ping), (r"/bare/([^/]+)", Put)])
        server = httpserver.HTTPServer(app)
        server.listen(port, HOST)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        server.stop()

    asyncio.run(main())


# ---------------------------------------------------------------- clients


def send_range(conn: http.client.HTTPConnection, method: str, path: str, headers: dict[str, str],
               source: Any, offset: int, count: int) -> http.client.HTTPResponse:
    """One request whose body is ``count`` bytes of ``source`` from ``offset``, sent with sendfile (zero-copy,
    nothing held in memory). The response body is read; the response is returned."""
    conn.putrequest(method, path, skip_accept_encoding=True)
    for key, value in headers.items():
        conn.putheader(key, value)
    conn.putheader("Content-Length", str(count))
    conn.endheaders()
    assert conn.sock is not None
    try:
        conn.sock.sendfile(source, offset, count)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server answered early (an error); read it below
    reply = conn.getresponse()
    reply.read()
    return reply


def tus_metadata(values: dict[str, str]) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


def flow_upload(server: JupyterServer, source: Path, project: int, chunk: int, name: str) -> int:
    """Upload ``source`` with tus: POST, then PATCH chunks streamed from the file. Returns the data file id."""
    size = source.stat().st_size
    conn = http.client.HTTPConnection(HOST, server.port, timeout=300)
    try:
        conn.request("POST", "/flow/api/uploads", headers=server.headers(**{
            "Tus-Resumable": "1.0.0", "Upload-Length": str(size),
            "Upload-Metadata": tus_metadata({"filename": name, "project": str(project)})}))
        reply = conn.getresponse()
        body = reply.read()
        if reply.status != 201:
            raise RuntimeError(f"tus create -> {reply.status}: {body[:500]!r}")
        location = reply.headers["Location"]
        offset = 0
        with open(source, "rb") as handle:
            while offset < size:
                count = min(chunk, size - offset)
                reply = send_range(conn, "PATCH", location, server.headers(**{
                    "Tus-Resumable": "1.0.0", "Content-Type": "application/offset+octet-stream",
                    "Upload-Offset": str(offset)}), handle, offset, count)
                if reply.status != 204 or int(reply.headers["Upload-Offset"]) != offset + count:
                    raise RuntimeError(f"PATCH at {offset} -> {reply.status}")
                offset += count
        return int(reply.headers["Flow-DataFile-Id"])
    finally:
        conn.close()


def tuspy_upload(server: JupyterServer, source: Path, project: int, chunk: int, name: str) -> None:
    """The stock tus client, same chunk size."""
    from tusclient import client

    tus = client.TusClient(f"http://{HOST}:{server.port}/flow/api/uploads", headers=server.headers())
    uploader = tus.uploader(str(source), chunk_size=chunk, metadata={"filename": name, "project": str(project)})
    uploader.upload()
    if uploader.offset != source.stat().st_size:
        raise RuntimeError(f"tuspy stopped at {uploader.offset}")


def bare_upload(bare: BareServer, source: Path, chunk: int, name: str) -> None:
    """The same client and chunks against the bare tornado PUT app."""
    size = source.stat().st_size
    conn = http.client.HTTPConnection(HOST, bare.port, timeout=300)
    try:
        offset = 0
        with open(source, "rb") as handle:
            while offset < size:
                count = min(chunk, size - offset)
                reply = send_range(conn, "PUT", f"/bare/{name}", {"Upload-Offset": str(offset),
                                   "Content-Type": "application/octet-stream"}, handle, offset, count)
                if reply.status != 204:
                    raise RuntimeError(f"bare PUT at {offset} -> {reply.status}")
                offset += count
    finally:
        conn.close()


def jupyterlab_upload(server: JupyterServer, source: Path, name: str) -> None:
    """JupyterLab 4's chunked upload: base64 JSON PUTs of 1 MiB to the contents API, chunk 1, 2, …, -1."""
    size = source.stat().st_size
    conn = http.client.HTTPConnection(HOST, server.port, timeout=300)
    headers = server.headers(**{"Content-Type": "text/plain;charset=UTF-8"})
    try:
        with open(source, "rb") as handle:
            start = 0
            while True:
                end = start + JLAB_CHUNK
                last = end >= size
                data = handle.read(JLAB_CHUNK)
                model = {"type": "file", "format": "base64", "name": name, "chunk": -1 if last else end // JLAB_CHUNK,
                         "content": base64.b64encode(data).decode("ascii")}
                conn.request("PUT", f"/api/contents/{name}", body=json.dumps(model).encode(), headers=headers)
                reply = conn.getresponse()
                body = reply.read()
                if reply.status not in (200, 201):
                    raise RuntimeError(f"contents PUT chunk at {start} -> {reply.status}: {body[:300]!r}")
                if last:
                    return
                start = end
    finally:
        conn.close()


def disk_write(source: Path, target: Path, chunk: int) -> None:
    """dd-like: 1 MiB writes of the source's bytes, fsync after every ``chunk`` bytes and at the end."""
    buffer = bytearray(MiB)
    view = memoryview(buffer)
    with open(source, "rb", buffering=0) as src:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            since_sync = 0
            while n := src.readinto(buffer):
                written = 0
                while written < n:
                    written += os.write(fd, view[written:n])
                since_sync += n
                if since_sync >= chunk:
                    os.fsync(fd)
                    since_sync = 0
            os.fsync(fd)
        finally:
            os.close(fd)


# ---------------------------------------------------------------- benchmark


def make_source(path: Path, size: int) -> None:
    """``size`` random bytes (incompressible), written in 8 MiB blocks."""
    with open(path, "wb") as out:
        left = size
        while left:
            block = os.urandom(min(8 * MiB, left))
            out.write(block)
            left -= len(block)


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def report_table(rates: dict[str, list[float]]) -> None:
    """MiB/s per configuration: median, min, max over the repetitions."""
    print()
    print(f"{'configuration':<46}{'median MiB/s':>13}{'min':>9}{'max':>9}{'reps':>6}")
    for label, values in rates.items():
        print(f"{label:<46}{statistics.median(values):13.0f}{min(values):9.0f}{max(values):9.0f}{len(values):6d}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="file size (default 1024)")
    parser.add_argument("--reps", type=int, default=3, help="repetitions per configuration (default 3)")
    parser.add_argument("--chunk-mib", type=int, default=64, help="bytes per PATCH/PUT (default 64)")
    parser.add_argument("--skip-tuspy", action="store_true", help="leave out the tuspy line")
    parser.add_argument("--serve-bare", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_bare is not None:
        serve_bare(args.serve_bare, args.port)
        return 0

    size, chunk = args.size_mib * MiB, args.chunk_mib * MiB
    tmp = Path(tempfile.mkdtemp(prefix="flow-bench-uploads-"))
    try:
        source = tmp / "source.bin"
        make_source(source, size)
        bare_dir = tmp / "bare"
        bare_dir.mkdir()
        labels = {
            "disk": "disk: 1 MiB writes + fsync per chunk",
            "bare": f"bare tornado PUT, {args.chunk_mib} MiB/request + fsync",
            "flow": f"flow tus, {args.chunk_mib} MiB PATCH (http.client)",
            "tuspy": f"flow tus via tuspy, {args.chunk_mib} MiB chunks",
            "jlab": "JupyterLab contents API, 1 MiB base64 JSON",
        }
        if args.skip_tuspy:
            del labels["tuspy"]
        rates: dict[str, list[float]] = {label: [] for label in labels.values()}
        bare = BareServer(bare_dir, tmp / "bare.log")
        with running_jupyter(tmp) as server:
            bare.start()
            try:
                project = server.create_project("upload-bench")
                print(f"  {args.size_mib} MiB file, {args.reps} reps; jupyter server :{server.port}, "
                      f"bare tornado :{bare.port}", flush=True)
                for rep in range(1, args.reps + 1):
                    name = f"bench-{rep}.bin"
                    runs: dict[str, Callable[[], Any]] = {
                        "disk": lambda: disk_write(source, tmp / name, chunk),
                        "bare": lambda: bare_upload(bare, source, chunk, name),
                        "flow": lambda: flow_upload(server, source, project, chunk, name),
                        "tuspy": lambda: tuspy_upload(server, source, project, chunk, name),
                        "jlab": lambda: jupyterlab_upload(server, source, name),
                    }
                    for key, label in labels.items():
                        seconds = timed(runs[key])
                        rates[label].append(size / MiB / seconds)
                        print(f"  rep {rep} {label}: {seconds:.2f} s = {size / MiB / seconds:.0f} MiB/s", flush=True)
                    # Keep the disk tidy between repetitions (Flow's copies: through its own API).
                    (tmp / name).unlink(missing_ok=True)
                    (bare_dir / name).unlink(missing_ok=True)
                    (server.contents / name).unlink(missing_ok=True)
                    for item in server.json("GET", f"/flow/api/files?project={project}&limit=100")["items"]:
                        server.json("DELETE", f"/flow/api/files/{item['id']}")
            finally:
                bare.stop()
        report_table(rates)
        med = {key: statistics.median(rates[label]) for key, label in labels.items()}
        jlab_x, bare_x = med["flow"] / med["jlab"], med["flow"] / med["bare"]
        print()
        print(f"upload: flow {med['flow']:.0f} MiB/s = {jlab_x:.1f}× JupyterLab contents API ({med['jlab']:.0f} "
              f"MiB/s), {bare_x:.2f}× bare tornado PUT ({med['bare']:.0f} MiB/s); disk+fsync {med['disk']:.0f} MiB/s")
        if "tuspy" in med:
            print(f"upload: tuspy {med['tuspy']:.0f} MiB/s = {med['tuspy'] / med['jlab']:.1f}× JupyterLab, "
                  f"{med['tuspy'] / med['bare']:.2f}× bare tornado PUT (stock client, {args.chunk_mib} MiB chunks)")
        verdict = "PASS" if jlab_x >= TARGET_JLAB and bare_x >= TARGET_BARE else "FAIL"
        print(f"targets: ≥{TARGET_JLAB:.0f}× JupyterLab ({jlab_x:.1f}×), ≥{TARGET_BARE}× bare tornado "
              f"({bare_x:.2f}×): {verdict}")
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
