"""Benchmark: upload 1 GiB over loopback — Flow's tus endpoint vs the reference tus server (tusd v2.9.1), and
JupyterLab's upload path, a bare tornado PUT and the disk as further peers.

Every peer is measured in the same run, in alternating rounds (the order flips every round; one unmeasured warm-up
round first), against the same
source file and the same disk (one temporary directory). For each line: MiB/s and the *server's* CPU seconds per
GiB (utime + stime of the server process, all its threads, from /proc, over the upload).

* **flow / tusd, requests** — ``POST`` then ``PATCH`` chunks of ``--chunk-mib`` (64 MiB) with one
  ``requests.Session``, each chunk read from the file into memory and sent as the body: the same client code for
  both servers. Flow fsyncs every chunk before acknowledging it and verifies the whole file's sha256 at the end;
  tusd (see bench/tusd.py) never fsyncs and does not hash.
* **flow / tusd, tuspy** — the stock tus client (``tusclient``), same chunk size (a new connection per chunk).
* **flow, sendfile** — a small ``http.client`` client streaming each chunk from the file with ``sendfile``.
* **bare tornado** — the ceiling of our stack: a tiny ``@stream_request_body`` PUT app (this file, started again
  in a subprocess) that ``pwrite``s each piece at the request's offset and fsyncs before answering, fed by the
  sendfile client with the same chunks.
* **jupyterlab** — jupyter_server's contents API exactly as JupyterLab 4's uploader drives it: ``PUT
  /api/contents/<path>`` with ``{"type": "file", "format": "base64", "name", "chunk": n, "content"}`` in 1 MiB
  chunks numbered 1, 2, … and ``-1`` on the last, one after the other.
* **disk+fsync** — dd-like: 1 MiB writes of the same bytes to a file, fsync after every chunk.

    .venv/bin/python bench/uploads.py [--size-mib 1024] [--reps 3] [--warmup 1] [--chunk-mib 64] [--peers ...]

tusd is built once with ``go install`` into ``~/.cache/flow-jupyter/tusd`` (bench/tusd.py). Servers are
subprocesses on 127.0.0.1 only, stopped at the end; the temporary directory is removed.
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
from urllib.parse import urljoin

from tusd import TUSD_VERSION, TusdServer  # bench/tusd.py, beside this script

MiB = 1 << 20
HOST = "127.0.0.1"
JLAB_CHUNK = 1 * MiB  # JupyterLab 4's CHUNK_SIZE (packages/filebrowser/src/model.ts)
TARGET_JLAB = 5.0
TARGET_BARE = 0.8
TARGET_TUSD_SPEED = 0.9
TARGET_TUSD_CPU = 1.5
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


def sendfile_upload(server: JupyterServer, source: Path, project: int, chunk: int, name: str) -> int:
    """Upload ``source`` to Flow with tus: POST, then PATCH chunks streamed from the file with sendfile. Returns
    the data file id."""
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


def requests_upload(create_url: str, headers: dict[str, str], source: Path, chunk: int,
                    metadata: dict[str, str]) -> None:
    """The plain tus client for both servers: POST, then PATCH ``chunk``-byte bodies read from the file, on one
    keep-alive ``requests.Session``."""
    import requests

    size = source.stat().st_size
    with requests.Session() as session:
        session.headers.update({**headers, "Tus-Resumable": "1.0.0"})
        created = session.post(create_url, headers={"Upload-Length": str(size),
                                                    "Upload-Metadata": tus_metadata(metadata)}, timeout=60)
        if created.status_code != 201:
            raise RuntimeError(f"tus create -> {created.status_code}: {created.text[:500]}")
        location = urljoin(create_url, created.headers["Location"])
        offset = 0
        with open(source, "rb") as handle:
            while offset < size:
                data = handle.read(chunk)
                reply = session.patch(location, data=data, timeout=300, headers={
                    "Content-Type": "application/offset+octet-stream", "Upload-Offset": str(offset)})
                if reply.status_code != 204 or int(reply.headers["Upload-Offset"]) != offset + len(data):
                    raise RuntimeError(f"PATCH at {offset} -> {reply.status_code}: {reply.text[:300]}")
                offset += len(data)


def tuspy_upload(create_url: str, headers: dict[str, str], source: Path, chunk: int,
                 metadata: dict[str, str]) -> None:
    """The stock tus client, same chunk size."""
    from tusclient import client

    tus = client.TusClient(create_url, headers=headers)
    uploader = tus.uploader(str(source), chunk_size=chunk, metadata=metadata)
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


@dataclass
class Line:
    """One measured configuration: its runs' MiB/s and server CPU seconds per GiB."""

    label: str
    rates: list[float] = field(default_factory=list)
    cpu_per_gib: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return statistics.median(self.rates)

    @property
    def cpu(self) -> float:
        return statistics.median(self.cpu_per_gib) if self.cpu_per_gib else float("nan")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (its threads included), from /proc."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields_ = text[text.rindex(")") + 2:].split()
    return (int(fields_[11]) + int(fields_[12])) / os.sysconf("SC_CLK_TCK")


def measure(line: Line, fn: Callable[[], Any], size: int, pid: int | None) -> None:
    """Run one upload; record MiB/s and, with a server ``pid``, that process's CPU seconds per GiB."""
    cpu_before = cpu_seconds(pid) if pid else 0.0
    start = time.perf_counter()
    fn()
    seconds = time.perf_counter() - start
    line.rates.append(size / MiB / seconds)
    text = f"{seconds:.2f} s = {size / MiB / seconds:.0f} MiB/s"
    if pid:
        line.cpu_per_gib.append((cpu_seconds(pid) - cpu_before) / (size / (1 << 30)))
        text += f", server CPU {line.cpu_per_gib[-1]:.2f} s/GiB"
    print(f"    {line.label}: {text}", flush=True)


def report_table(lines: dict[str, Line]) -> None:
    """MiB/s (median, min, max) and server CPU s/GiB (median) per configuration."""
    print()
    print(f"{'configuration':<52}{'median MiB/s':>13}{'min':>7}{'max':>7}{'CPU s/GiB':>11}{'reps':>6}")
    for line in lines.values():
        print(f"{line.label:<52}{line.rate:13.0f}{min(line.rates):7.0f}{max(line.rates):7.0f}{line.cpu:11.2f}"
              f"{len(line.rates):6d}")


PEERS = ("flow", "tusd", "flow-tuspy", "tusd-tuspy", "flow-sendfile", "bare", "disk", "jlab")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="file size (default 1024)")
    parser.add_argument("--reps", type=int, default=3, help="rounds; every peer once per round (default 3)")
    parser.add_argument("--warmup", type=int, default=1,
                        help="unmeasured rounds first (default 1): a fresh server's first GiB costs more for all")
    parser.add_argument("--chunk-mib", type=int, default=64, help="bytes per PATCH/PUT (default 64)")
    parser.add_argument("--peers", default=",".join(PEERS),
                        help=f"comma-separated lines to measure (default all: {','.join(PEERS)})")
    parser.add_argument("--skip-tuspy", action="store_true", help="leave out the tuspy lines")
    parser.add_argument("--serve-bare", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_bare is not None:
        serve_bare(args.serve_bare, args.port)
        return 0
    peers = [peer for peer in args.peers.split(",") if peer]
    if unknown := set(peers) - set(PEERS):
        parser.error(f"unknown peers {sorted(unknown)} (choose from {','.join(PEERS)})")
    if args.skip_tuspy:
        peers = [peer for peer in peers if not peer.endswith("tuspy")]

    size, chunk = args.size_mib * MiB, args.chunk_mib * MiB
    labels = {
        "flow": f"flow tus, requests, {args.chunk_mib} MiB PATCH + fsync",
        "tusd": f"tusd {TUSD_VERSION}, requests, {args.chunk_mib} MiB PATCH",
        "flow-tuspy": f"flow tus, tuspy, {args.chunk_mib} MiB chunks + fsync",
        "tusd-tuspy": f"tusd {TUSD_VERSION}, tuspy, {args.chunk_mib} MiB chunks",
        "flow-sendfile": f"flow tus, sendfile client, {args.chunk_mib} MiB PATCH",
        "bare": f"bare tornado PUT, {args.chunk_mib} MiB/request + fsync",
        "disk": "disk: 1 MiB writes + fsync per chunk",
        "jlab": "JupyterLab contents API, 1 MiB base64 JSON",
    }
    lines = {peer: Line(labels[peer]) for peer in peers}
    tmp = Path(tempfile.mkdtemp(prefix="flow-bench-uploads-"))
    try:
        source = tmp / "source.bin"
        make_source(source, size)
        bare_dir, tusd_dir = tmp / "bare", tmp / "tusd"
        bare_dir.mkdir()
        bare = BareServer(bare_dir, tmp / "bare.log")
        tusd = TusdServer(tusd_dir, tmp / "tusd.log", free_port())
        with running_jupyter(tmp) as server:
            try:
                if "bare" in peers:
                    bare.start()
                if {"tusd", "tusd-tuspy"} & set(peers):
                    tusd.start()
                    assert tusd.process is not None
                    wait_http(tusd.port, "/", {}, tusd.process, tusd.log)
                project = server.create_project("upload-bench")
                assert server.process is not None
                flow_url = f"http://{HOST}:{server.port}/flow/api/uploads"
                flow_pid = server.process.pid
                tusd_pid = tusd.process.pid if tusd.process else None
                bare_pid = bare.process.pid if bare.process else None
                print(f"  {args.size_mib} MiB file, {args.chunk_mib} MiB chunks, {args.reps} rounds; jupyter "
                      f":{server.port}, tusd :{tusd.port}, bare tornado :{bare.port}", flush=True)
                for rep in range(1 - args.warmup, args.reps + 1):
                    name = f"bench-{rep + args.warmup}.bin"
                    meta = {"filename": name, "project": str(project)}
                    runs: dict[str, tuple[Callable[[], Any], int | None]] = {
                        "flow": (lambda: requests_upload(flow_url, server.headers(), source, chunk, meta), flow_pid),
                        "tusd": (lambda: requests_upload(tusd.url, {}, source, chunk, meta), tusd_pid),
                        "flow-tuspy": (lambda: tuspy_upload(flow_url, server.headers(), source, chunk, meta),
                                       flow_pid),
                        "tusd-tuspy": (lambda: tuspy_upload(tusd.url, {}, source, chunk, meta), tusd_pid),
                        "flow-sendfile": (lambda: sendfile_upload(server, source, project, chunk, name), flow_pid),
                        "bare": (lambda: bare_upload(bare, source, chunk, name), bare_pid),
                        "disk": (lambda: disk_write(source, tmp / name, chunk), None),
                        "jlab": (lambda: jupyterlab_upload(server, source, name), flow_pid),
                    }
                    order = peers if rep % 2 else peers[::-1]  # alternate, so no peer always goes first
                    print(f"  round {rep}:" if rep > 0 else "  warm-up round (not counted):", flush=True)
                    for peer in order:
                        fn, pid = runs[peer]
                        measure(lines[peer] if rep > 0 else Line(lines[peer].label), fn, size, pid)
                        tidy(server, project, [tmp / name, bare_dir / name, server.contents / name], tusd_dir)
            finally:
                bare.stop()
                tusd.stop()
        report_table(lines)
        print()
        summarize(lines, args.chunk_mib)
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def tidy(server: JupyterServer, project: int, paths: list[Path], tusd_dir: Path) -> None:
    """Keep the disk from filling up between runs: Flow's copies through its own API, the others directly."""
    for path in paths:
        path.unlink(missing_ok=True)
    if tusd_dir.exists():
        for path in tusd_dir.iterdir():
            path.unlink(missing_ok=True)
    for item in server.json("GET", f"/flow/api/files?project={project}&limit=100")["items"]:
        server.json("DELETE", f"/flow/api/files/{item['id']}")


def summarize(lines: dict[str, Line], chunk_mib: int) -> None:
    """The ratios against each peer measured in the same run, and the targets."""
    verdicts: list[bool] = []
    for flow_key, tusd_key, client in (("flow", "tusd", "requests"), ("flow-tuspy", "tusd-tuspy", "tuspy")):
        if flow_key in lines and tusd_key in lines:
            flow, tusd = lines[flow_key], lines[tusd_key]
            speed, cpu = flow.rate / tusd.rate, flow.cpu / tusd.cpu
            verdicts += [speed >= TARGET_TUSD_SPEED, cpu <= TARGET_TUSD_CPU]
            print(f"upload vs tusd ({client}, {chunk_mib} MiB chunks): flow {flow.rate:.0f} MiB/s = {speed:.2f}× "
                  f"tusd ({tusd.rate:.0f} MiB/s); server CPU {flow.cpu:.2f} s/GiB = {cpu:.2f}× tusd "
                  f"({tusd.cpu:.2f} s/GiB)")
    fastest_flow = lines.get("flow-sendfile") or lines.get("flow")
    if fastest_flow is None:
        return print_verdict(verdicts)
    flow = fastest_flow
    if "jlab" in lines:
        jlab_x = flow.rate / lines["jlab"].rate
        verdicts.append(jlab_x >= TARGET_JLAB)
        print(f"upload vs JupyterLab: {flow.label} {flow.rate:.0f} MiB/s = {jlab_x:.1f}× the contents API "
              f"({lines['jlab'].rate:.0f} MiB/s)")
    if "bare" in lines:
        bare_x = flow.rate / lines["bare"].rate
        verdicts.append(bare_x >= TARGET_BARE)
        print(f"upload vs bare tornado: {flow.label} {flow.rate:.0f} MiB/s = {bare_x:.2f}× "
              f"({lines['bare'].rate:.0f} MiB/s); CPU {flow.cpu:.2f} vs {lines['bare'].cpu:.2f} s/GiB")
    if "disk" in lines:
        print(f"disk+fsync: {lines['disk'].rate:.0f} MiB/s")
    print_verdict(verdicts)


def print_verdict(verdicts: list[bool]) -> None:
    print(f"targets: ≥{TARGET_TUSD_SPEED}× tusd's MiB/s and ≤{TARGET_TUSD_CPU}× its CPU per GiB, "
          f"≥{TARGET_JLAB:.0f}× JupyterLab, ≥{TARGET_BARE}× bare tornado (those measured): "
          f"{'PASS' if verdicts and all(verdicts) else 'FAIL'}")


if __name__ == "__main__":
    sys.exit(main())
