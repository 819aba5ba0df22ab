"""Find a usable Nextflow, or assemble a real one from Maven Central.

Nextflow's core is published on Maven Central as ``io.nextflow:nextflow``. When no recent enough ``nextflow`` is on
PATH, `install` resolves the pinned version and its runtime dependencies with Maven into
``<cache_dir>/nextflow/<version>/lib`` and writes a small ``nextflow`` launcher into the Python environment's
``bin/``. The launcher runs Nextflow offline (``NXF_OFFLINE=true``) with a fixed ``NXF_HOME``, so nothing is ever
downloaded at run time. nextflow.py (``import nextflow``) needs an executable named ``nextflow`` on PATH; the
launcher is that executable.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import sysconfig
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..config import FlowSettings
from ..fsutil import atomic_write_text
from ..proc import CommandError, run
from .nf_plugin import build_plugin
from .paths import nextflow_lib_dir

LAUNCHER_MARKER = "# flow-jupyter nextflow launcher"
LAUNCHER_REVISION = "revision 2"
# The module openings Nextflow's own launcher passes on Java 9+: without them its task cache (and so -resume)
# silently fails on Java 17, among other things.
JVM_OPENS = [
    f"--add-opens=java.base/{package}=ALL-UNNAMED"
    for package in (
        "java.lang", "java.io", "java.nio", "java.net", "java.util", "java.util.concurrent.locks",
        "java.util.concurrent.atomic", "java.nio.file.spi", "sun.nio.ch", "sun.nio.fs",
        "sun.net.www.protocol.http", "sun.net.www.protocol.https", "sun.net.www.protocol.ftp",
        "sun.net.www.protocol.file", "jdk.internal.misc", "jdk.internal.vm", "java.util.regex",
    )
]
JVM_PROPERTIES = ["-Dfile.encoding=UTF-8", "-Djava.awt.headless=true", "-Dcom.sun.security.enableAIAcaIssuers=true"]
_VERSION = re.compile(r"version\s+(\d+\.\d+\.\d+\S*)")
# Maven's ways of saying an artifact is not on the repository (fresh look-up, or a failure cached in ~/.m2).
_MISSING = re.compile(r"(?:Could not find artifact|Failure to find)\s+(\S+)")
_UNRESOLVED = re.compile(r"artifacts could not be resolved: (.+?): (?:Could not|Failure)")


def parse_nextflow_version(text: str) -> str | None:
    """The version from the output of ``nextflow -version`` (``version 24.10.0 build 5928`` → ``24.10.0``)."""
    match = _VERSION.search(text)
    return match.group(1) if match else None


def _as_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


@dataclass(frozen=True)
class NextflowStatus:
    """What `nextflow` on PATH is, and whether Flow can use it."""

    path: str | None
    version: str | None
    flow_launcher: bool
    usable: bool
    problem: str = ""

    def describe(self) -> str:
        if not self.path:
            return "not found on PATH"
        origin = "flow-jupyter launcher" if self.flow_launcher else "from PATH"
        return f"{self.version or 'unknown version'} ({origin}: {self.path})"


class NextflowInstall:
    """Status and installation of Nextflow according to FlowSettings."""

    def __init__(self, settings: FlowSettings):
        self.settings = settings

    @property
    def lib_dir(self) -> Path:
        return nextflow_lib_dir(self.settings)

    @property
    def bin_dir(self) -> Path:
        return Path(self.settings.bin_dir or sysconfig.get_path("scripts"))

    @property
    def launcher_path(self) -> Path:
        return self.bin_dir / "nextflow"

    def status(self, timeout: float = 60.0, path: str | None = None) -> NextflowStatus:
        """Run the ``nextflow`` found on ``path`` (default: this process's PATH) and report its version."""
        found = shutil.which("nextflow", path=path)
        if not found:
            return NextflowStatus(None, None, False, False, "not found on PATH")
        ours = _is_flow_launcher(Path(found))
        env = dict(os.environ, NXF_OFFLINE="true", NXF_ANSI_LOG="false")
        if path is not None:
            env["PATH"] = path
        try:
            out = run([found, "-version"], timeout=timeout, env=env)
        except CommandError as exc:
            return NextflowStatus(found, None, ours, False, exc.summary())
        version = parse_nextflow_version(out.stdout + out.stderr)
        if version is None:
            return NextflowStatus(found, None, ours, False, "could not read its version")
        if _as_tuple(version) < _as_tuple(self.settings.nextflow_min_version):
            return NextflowStatus(found, version, ours, False, f"older than {self.settings.nextflow_min_version}")
        return NextflowStatus(found, version, ours, True)

    def install(self, force: bool = False, log=print) -> NextflowStatus:
        """Make a usable ``nextflow`` available; a no-op when one already is (unless ``force``)."""
        current = self.status()
        if current.usable and not current.flow_launcher and not force:
            log(f"nextflow: {current.describe()} — nothing to do")
            log("nextflow: note: Flow's nf-flow plugin is built for the assembled Nextflow only; runs on this one "
                "are monitored from the trace file and log")
            return current
        with_ours = str(self.bin_dir) + os.pathsep + os.environ.get("PATH", "")
        if not force and self._lib_complete() and _launcher_is_current(self.launcher_path):
            ours = self.status(path=with_ours)
            if ours.usable:
                log(f"nextflow: {ours.describe()} — nothing to do")
                build_plugin(self.settings, self.lib_dir, force=force, log=log)
                self._note_path(log)
                return ours
        if force or not self._lib_complete():
            self._resolve_jars(log)
        self._write_launcher()
        log(f"nextflow: launcher written to {self.launcher_path}")
        result = self.status(path=with_ours)
        if not result.usable:
            raise RuntimeError(f"the assembled Nextflow does not run: {result.problem}")
        build_plugin(self.settings, self.lib_dir, force=force, log=log)
        self._note_path(log)
        return result

    def _note_path(self, log) -> None:
        if self.bin_dir != Path(shutil.which("nextflow") or "/").parent:
            log(f"nextflow: note: put {self.bin_dir} on PATH (e.g. activate this virtual environment)")

    def _lib_complete(self) -> bool:
        return (self.lib_dir / ".complete").is_file()

    def _resolve_jars(self, log) -> None:
        """Copy the pinned Nextflow and its runtime dependencies from Maven Central into the cache."""
        mvn = shutil.which("mvn")
        if not mvn:
            raise RuntimeError("Maven (mvn) is needed to assemble Nextflow; install it (Debian: apt-get install maven)")
        version = self.settings.nextflow_version
        if not re.fullmatch(r"\d+\.\d+\.\d+(-[A-Za-z0-9.]+)?", version):
            raise ValueError(f"nextflow_version {version!r} is not a version number")
        self.lib_dir.parent.mkdir(parents=True, exist_ok=True)
        log(f"nextflow: resolving io.nextflow:nextflow:{version} from Maven Central into {self.lib_dir}")
        with tempfile.TemporaryDirectory(dir=self.lib_dir.parent, prefix=".resolve-") as work:
            pom = Path(work) / "pom.xml"
            pom.write_bytes(resources.files(__package__).joinpath("nextflow-pom.xml").read_bytes())
            staged = Path(work) / "lib"
            try:
                run(
                    [mvn, "-q", "-B", "-U", "-Dstyle.color=never", "-f", str(pom), f"-Dnextflow.version={version}",
                     "dependency:copy-dependencies", f"-DoutputDirectory={staged}"],
                    timeout=1800,
                    cwd=work,
                )
            except CommandError as exc:
                output = exc.stdout + exc.stderr
                listed = [a.strip() for m in _UNRESOLVED.findall(output) for a in m.split(",")]
                missing = sorted(set(_MISSING.findall(output) + listed))
                detail = f"missing on Maven Central: {', '.join(missing)}" if missing else exc.summary()
                raise RuntimeError(f"cannot assemble Nextflow {version}: {detail}") from None
            (staged / ".complete").write_text(version + "\n")
            if self.lib_dir.exists():
                shutil.rmtree(self.lib_dir)
            staged.rename(self.lib_dir)
        log(f"nextflow: {len(list(self.lib_dir.glob('*.jar')))} jars in {self.lib_dir}")

    def _write_launcher(self) -> None:
        """Write the ``nextflow`` launcher; only paths from our own settings go into it."""
        self.bin_dir.mkdir(parents=True, exist_ok=True)
        classpath = shlex.quote(str(self.lib_dir) + "/*")
        nxf_home = shlex.quote(self.settings.nxf_home)
        jvm = " ".join(JVM_PROPERTIES + JVM_OPENS)
        script = "\n".join([
            "#!/bin/sh",
            f"{LAUNCHER_MARKER} ({LAUNCHER_REVISION})",
            f"# Nextflow {self.settings.nextflow_version} assembled from Maven Central; runs offline.",
            "export NXF_OFFLINE=true",
            f"export NXF_HOME={nxf_home}",
            f"exec \"${{JAVA_CMD:-java}}\" {jvm} $NXF_OPTS $NXF_JVM_ARGS -cp {classpath} nextflow.cli.Launcher \"$@\"",
            "",
        ])
        atomic_write_text(self.launcher_path, script, mode=0o755)
        Path(self.settings.nxf_home).mkdir(parents=True, exist_ok=True)


def _launcher_is_current(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return f"{LAUNCHER_MARKER} ({LAUNCHER_REVISION})".encode() in handle.read(512)
    except OSError:
        return False


def _is_flow_launcher(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return LAUNCHER_MARKER.encode() in handle.read(512)
    except OSError:
        return False
