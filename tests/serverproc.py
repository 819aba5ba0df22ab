"""A real `jupyter server` child process with Flow enabled by its installed config, for tests that kill it
(`kill -9`) and start it again on the same Flow root and database."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests

from conftest import TEST_USER_HEADER
from waiting import WaitTimeout, wait_for

TOKEN = uuid.uuid4().hex


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A `jupyter server` child process with Flow enabled by its installed config, on a fixed root and database."""

    def __init__(self, workdir: Path, root: Path, database_url: str, *options: str,
                 config: dict[str, Any] | None = None):
        """``options`` are command-line flags; ``config`` is FlowSettings given as a config file (for values a flag
        spells badly, like a list of argv words)."""
        self.workdir, self.root, self.database_url, self.options = workdir, root, database_url, list(options)
        self.config = config
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.log = workdir / "server.log"

    def start(self) -> None:
        argv = [sys.executable, "-m", "jupyter_server", "--no-browser", f"--port={self.port}",
                "--ServerApp.port_retries=0", "--ServerApp.ip=127.0.0.1", f"--ServerApp.token={TOKEN}",
                f"--ServerApp.root_dir={self.workdir}", f"--FlowSettings.root_dir={self.root}",
                f"--FlowSettings.database_url={self.database_url}",
                f"--FlowSettings.test_identity_header={TEST_USER_HEADER}", "--FlowSettings.validate_responses=True",
                *self.options]
        if os.geteuid() == 0:
            argv.append("--allow-root")
        env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(self.workdir / "runtime"),
                   JUPYTER_CONFIG_DIR=str(self.workdir / "config"))
        if self.config is not None:
            (self.workdir / "config").mkdir(parents=True, exist_ok=True)
            (self.workdir / "config" / "jupyter_server_config.json").write_text(
                json.dumps({"FlowSettings": self.config}))
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env,
                                            start_new_session=True)
        try:
            wait_for(self._answers, what="jupyter server to answer", timeout=90, interval=0.2)
        except WaitTimeout as timeout:
            pytest.fail(f"{timeout}:\n{self.log.read_text()}")

    def _answers(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            pytest.fail(f"jupyter server exited with {self.process.returncode}:\n{self.log.read_text()}")
        try:
            return requests.get(f"{self.base}/api/status", headers=self.headers(), timeout=2).status_code == 200
        except requests.ConnectionError:
            return False

    def kill_9(self, with_children: bool = False) -> None:
        """SIGKILL the server; ``with_children``: its whole process group too (the commands it was running, as
        when the machine it ran on died), not only the server process."""
        assert self.process is not None
        if with_children:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)  # its own session: start_new_session
            except ProcessLookupError:
                pass
        else:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)

    @staticmethod
    def headers(user: str | None = "alice", **extra: str) -> dict[str, str]:
        """Headers acting as ``user`` (None: the server's own user, the admin)."""
        return {"Authorization": f"token {TOKEN}", **({TEST_USER_HEADER: user} if user else {}), **extra}


@contextmanager
def running(server: Server) -> Iterator[Server]:
    server.start()
    try:
        yield server
    finally:
        server.stop()
