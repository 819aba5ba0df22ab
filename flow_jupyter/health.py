"""Component checks shared by `flow-jupyter doctor` and ``GET /flow/api/health``.

Each check runs the real thing (``java -version``, ``nextflow -version``, ``sinfo``, a database round trip …) and
returns a `Component` with a one-line detail and, when it fails, a hint at the fix. Checks run concurrently, so a
report takes about as long as its slowest check (a JVM start).
"""
from __future__ import annotations

import re
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .config import FlowSettings
from .proc import CommandError, run
from .toolchain import NextflowInstall
from .toolchain.nf_plugin import plugin_status


@dataclass(frozen=True)
class Component:
    name: str
    ok: bool
    detail: str
    hint: str = ""
    version: str | None = None
    required: bool = True

    @property
    def state(self) -> str:
        if self.ok:
            return "OK"
        return "FAIL" if self.required else "WARN"


@dataclass(frozen=True)
class HealthReport:
    components: list[Component]
    checked_at: float = field(default_factory=time.time)

    @property
    def healthy(self) -> bool:
        return all(c.ok for c in self.components if c.required)

    @property
    def failing(self) -> list[str]:
        return [c.name for c in self.components if c.required and not c.ok]

    def as_json(self) -> dict:
        return {
            "status": "ok" if self.healthy else "fail",
            "failing": self.failing,
            "checked_at": self.checked_at,
            "components": {
                c.name: {k: v for k, v in asdict(c).items() if k != "name"} | {"state": c.state}
                for c in self.components
            },
        }


Check = Callable[[FlowSettings], Component]


def check_java(settings: FlowSettings) -> Component:
    try:
        out = run(["java", "-version"], timeout=settings.health_check_timeout)
    except CommandError as exc:
        return Component("java", False, exc.summary(), "install Java 17 (Debian: apt-get install openjdk-17-jre-headless)")
    match = re.search(r'version "([^"]+)"', out.stderr + out.stdout)
    version = match.group(1) if match else None
    major = int(version.split(".")[0]) if version and version.split(".")[0].isdigit() else 0
    if major < 11:
        return Component("java", False, f"Java {version} is too old", "Nextflow needs Java 11 to 23", version)
    return Component("java", True, f"Java {version}", version=version)


def check_nextflow(settings: FlowSettings) -> Component:
    status = NextflowInstall(settings).status(timeout=settings.health_check_timeout)
    if status.usable:
        return Component("nextflow", True, status.describe(), version=status.version)
    return Component(
        "nextflow", False, f"{status.describe()}: {status.problem}" if status.path else status.describe(),
        "run 'flow-jupyter toolchain install' and put its bin directory on PATH", status.version,
    )


def check_slurm(settings: FlowSettings) -> Component:
    hint = "start Slurm (dev machine: scripts/slurm.sh start) or set FlowSettings.slurm_conf"
    try:
        sinfo = list(settings.slurm_info_command)
        out = run([*sinfo, "-h", "-o", "%P|%a|%D|%t"], timeout=settings.health_check_timeout,
                  env=settings.slurm_env())
        version = run([*sinfo, "--version"], timeout=settings.health_check_timeout,
                      env=settings.slurm_env()).stdout.strip()
    except CommandError as exc:
        return Component("slurm", False, exc.summary(), hint)
    partitions = [line.split("|") for line in out.stdout.splitlines() if line.count("|") == 3]
    up = [p for p in partitions if p[1] == "up"]
    if not up:
        return Component("slurm", False, "no partition is up", hint, version)
    text = ", ".join(f"{name} {state} ({nodes} node{'s' * (nodes != '1')})" for name, _, nodes, state in up)
    return Component("slurm", True, text, version=version.removeprefix("slurm ") or None)


def check_database(settings: FlowSettings) -> Component:
    from sqlalchemy import text

    from .db.session import make_engine, redact

    url = settings.resolved_database_url()
    try:
        engine = make_engine(url, settings)
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
                version = engine.dialect.server_version_info
        finally:
            engine.dispose()
    except Exception as exc:  # any driver error means "database unreachable"; the message says which
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return Component("database", False, f"{redact(url)}: {first}", "check FlowSettings.database_url")
    shown = ".".join(map(str, version)) if version else None
    return Component("database", True, f"{engine.dialect.name} at {redact(url)}", version=shown)


def check_disk(settings: FlowSettings) -> Component:
    path = Path(settings.root_dir)
    while not path.exists() and path != path.parent:
        path = path.parent
    free_gb = shutil.disk_usage(path).free / 2**30
    detail = f"{free_gb:.1f} GiB free under {settings.root_dir}"
    if free_gb < settings.min_free_disk_gb:
        return Component("disk", False, detail, f"free space or raise FlowSettings.min_free_disk_gb "
                                                f"(now {settings.min_free_disk_gb:g} GiB)")
    return Component("disk", True, detail)


def _version_check(name: str, argv: list[str], pattern: str, hint: str) -> Check:
    def check(settings: FlowSettings) -> Component:
        try:
            out = run(argv, timeout=settings.health_check_timeout)
        except CommandError as exc:
            return Component(name, False, exc.summary(), hint)
        match = re.search(pattern, out.stdout + out.stderr)
        version = match.group(1) if match else None
        return Component(name, True, f"{name} {version or '(version unknown)'}", version=version)

    check.__name__ = f"check_{name}"
    return check


check_fastqc = _version_check("fastqc", ["fastqc", "--version"], r"v?(\d+\.\d+\.\d+)",
                              "install FastQC (Debian: apt-get install fastqc)")
check_multiqc = _version_check("multiqc", ["multiqc", "--version"], r"version\s+(\S+)",
                               "install MultiQC (pip install multiqc) into the environment on PATH")

def check_nf_plugin(settings: FlowSettings) -> Component:
    """Flow's Nextflow plugin gives live events; without it runs still work, monitored from trace file and log."""
    ok, detail = plugin_status(settings)
    return Component("nf-plugin", ok, detail, "" if ok else "run 'flow-jupyter toolchain install' to build it")


CHECKS: dict[str, Check] = {
    "java": check_java,
    "nextflow": check_nextflow,
    "slurm": check_slurm,
    "database": check_database,
    "disk": check_disk,
    "fastqc": check_fastqc,
    "multiqc": check_multiqc,
    "nf-plugin": check_nf_plugin,
}


def run_checks(settings: FlowSettings, names: list[str] | None = None) -> HealthReport:
    """Run the named checks (default: all) concurrently; required-ness comes from the settings."""
    selected = names or list(CHECKS)
    required = settings.required()
    with ThreadPoolExecutor(max_workers=len(selected), thread_name_prefix="flow-health") as pool:
        results = list(pool.map(lambda name: CHECKS[name](settings), selected))
    components = [
        Component(c.name, c.ok, c.detail, c.hint, c.version, required=c.name in required) for c in results
    ]
    return HealthReport(components)


class CachedHealth:
    """Reuses a report for ``health_cache_seconds`` and lets concurrent callers share one run of the checks."""

    def __init__(self, settings: FlowSettings):
        self.settings = settings
        self._lock = threading.Lock()
        self._report: HealthReport | None = None

    def get(self) -> HealthReport:
        with self._lock:
            report = self._report
            fresh = report is not None and time.time() - report.checked_at < self.settings.health_cache_seconds
            if report is None or not fresh:
                report = self._report = run_checks(self.settings)
            return report
