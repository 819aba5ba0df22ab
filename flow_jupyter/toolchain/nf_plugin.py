"""Build and install Flow's own Nextflow plugin, ``nf-flow``, which writes a run's live events.

Why a plugin of our own: offline Nextflow cannot fetch ``nf-weblog`` or any registry plugin, and its log is free
text. A small TraceObserver gets the structured callbacks (task submitted/started/completed with Slurm job id, exit
code and resources; files published; run finished) and appends them as JSON lines to the file named by the
environment variable ``FLOW_EVENTS_FILE``, which Flow sets when it starts Nextflow.

Why it is compiled here rather than shipped as a jar: the Groovy compiler is already on the assembled Nextflow's
classpath, so the sources (package data under ``flow_jupyter/execution/nf_plugin``) compile against exactly the
Nextflow that will load them, in about five seconds, without Gradle or a network.

Layout that Nextflow loads offline when a run config declares ``plugins { id 'nf-flow@<version>' }``::

    <nxf_home>/plugins/nf-flow-<version>/classes/<compiled classes>
                                        /classes/META-INF/MANIFEST.MF
                                        /classes/META-INF/extensions.idx
                                        /flow-build.json     (hash of what was compiled; ours, ignored by Nextflow)
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

from ..config import FlowSettings
from ..proc import CommandError, run
from .paths import nextflow_lib_dir

PLUGIN_ID = "nf-flow"
PLUGIN_VERSION = "0.1.0"
#: Environment variable through which Flow tells the plugin where to write (never a Groovy config value).
EVENTS_FILE_ENV = "FLOW_EVENTS_FILE"

_SOURCE_PACKAGE = "flow_jupyter.execution"
_SOURCE_DIR = "nf_plugin"
_MANIFEST_TEMPLATE = "MANIFEST.MF.template"
_EXTENSIONS = "extensions.idx"
_BUILD_INFO = "flow-build.json"
_COMPILER = "org.codehaus.groovy.tools.FileSystemCompiler"


class PluginBuildError(RuntimeError):
    """The plugin sources could not be compiled or installed."""


def plugins_dir(settings: FlowSettings) -> Path:
    """Where Nextflow looks for unpacked plugins: ``$NXF_HOME/plugins``."""
    return Path(settings.nxf_home) / "plugins"


def plugin_dir(settings: FlowSettings) -> Path:
    """The installed plugin's directory, ``<nxf_home>/plugins/nf-flow-<version>``."""
    return plugins_dir(settings) / f"{PLUGIN_ID}-{PLUGIN_VERSION}"


def config_snippet() -> str:
    """Nextflow config text that loads the plugin; it holds no user value (the event file comes from the env)."""
    return f"plugins {{\n    id '{PLUGIN_ID}@{PLUGIN_VERSION}'\n}}\n"


def _source_files() -> dict[str, bytes]:
    """Every packaged plugin file by name (Groovy sources, manifest template, extensions index)."""
    root = resources.files(_SOURCE_PACKAGE).joinpath(_SOURCE_DIR)
    files = {entry.name: entry.read_bytes() for entry in root.iterdir() if entry.is_file()}
    if not any(name.endswith(".groovy") for name in files):
        raise PluginBuildError(f"no Groovy sources found in {_SOURCE_PACKAGE}/{_SOURCE_DIR}")
    return files


def _classpath_signature(lib_dir: Path) -> list[str]:
    """The jar names of the Nextflow we compile against: a different Nextflow/Groovy means a rebuild."""
    return sorted(p.name for p in Path(lib_dir).glob("*.jar"))


def source_hash(lib_dir: Path) -> str:
    """Hash of everything a build depends on: the plugin version, the packaged files and the classpath's jars."""
    digest = hashlib.sha256()
    digest.update(f"{PLUGIN_ID}@{PLUGIN_VERSION}\n".encode())
    for name, data in sorted(_source_files().items()):
        digest.update(f"{name}\0{len(data)}\0".encode())
        digest.update(data)
    for jar in _classpath_signature(lib_dir):
        digest.update(f"jar\0{jar}\n".encode())
    return digest.hexdigest()


def _installed_hash(target: Path) -> str | None:
    try:
        return json.loads((target / _BUILD_INFO).read_text()).get("source_hash")
    except (OSError, ValueError, AttributeError):
        return None


def _layout_problem(target: Path) -> str | None:
    """What is missing from an installed plugin directory, or None when it is complete."""
    meta = target / "classes" / "META-INF"
    for needed in (meta / "MANIFEST.MF", meta / _EXTENSIONS):
        if not needed.is_file():
            return f"{needed.relative_to(target)} is missing"
    manifest = (meta / "MANIFEST.MF").read_text()
    if f"Plugin-Version: {PLUGIN_VERSION}" not in manifest or f"Plugin-Id: {PLUGIN_ID}" not in manifest:
        return "its manifest names another plugin or version"
    for line in (meta / _EXTENSIONS).read_text().split():
        if not (target / "classes" / (line.replace(".", "/") + ".class")).is_file():
            return f"class {line} is missing"
    return None


@contextmanager
def _install_lock(directory: Path) -> Iterator[None]:
    """Serialise builds by several Flow processes sharing one NXF_HOME (hub service and user servers)."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / f".{PLUGIN_ID}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build_plugin(settings: FlowSettings, lib_dir: Path | str, *, force: bool = False, log=print) -> Path:
    """Compile the plugin against ``lib_dir`` (Nextflow's jars) and install it under ``settings.nxf_home``.

    Idempotent: when the installed plugin was built from the same sources, version and jars it is left untouched
    (no JVM is started). Otherwise the classes are compiled into a staging directory beside the target and moved
    into place by rename, so a Nextflow starting meanwhile never sees a half-written plugin. Returns the plugin
    directory.
    """
    lib_dir = Path(lib_dir)
    if not any(lib_dir.glob("nextflow-*.jar")):
        raise PluginBuildError(f"no Nextflow jars in {lib_dir}; run `flow-jupyter toolchain install` first")
    target = plugin_dir(settings)
    wanted = source_hash(lib_dir)
    if not force and _installed_hash(target) == wanted and _layout_problem(target) is None:
        return target
    # Staging, lock and leftovers live in NXF_HOME itself, not in plugins/, which Nextflow may scan; it is the same
    # filesystem, so the final rename is atomic.
    home = Path(settings.nxf_home)
    home.mkdir(parents=True, exist_ok=True)
    with _install_lock(home):
        # Another process may have installed it while we waited for the lock.
        if not force and _installed_hash(target) == wanted and _layout_problem(target) is None:
            return target
        staging = Path(tempfile.mkdtemp(prefix=f".{PLUGIN_ID}-build-", dir=home))
        try:
            _compile_into(staging, lib_dir, wanted)
            problem = _layout_problem(staging)
            if problem:
                raise PluginBuildError(f"the compiled plugin is incomplete: {problem}")
            _swap_into_place(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    log(f"nextflow plugin: {PLUGIN_ID}@{PLUGIN_VERSION} built into {target}")
    return target


def _compile_into(staging: Path, lib_dir: Path, wanted: str) -> None:
    """Write the sources out, compile them with Nextflow's own Groovy, and add manifest, index and build info."""
    files = _source_files()
    src = staging / "src"
    src.mkdir()
    for name, data in files.items():
        (src / name).write_bytes(data)
    classes = staging / "classes"
    meta = classes / "META-INF"
    meta.mkdir(parents=True)
    java = os.environ.get("JAVA_CMD") or "java"
    sources = sorted(str(p) for p in src.glob("*.groovy"))
    try:
        # The classpath wildcard is expanded by java itself; no shell is involved.
        run([java, "-cp", str(lib_dir / "*"), _COMPILER, "-d", str(classes), *sources], timeout=300, cwd=str(staging))
    except CommandError as exc:
        raise PluginBuildError(f"compiling the {PLUGIN_ID} plugin failed: {exc.summary()}") from None
    manifest = files[_MANIFEST_TEMPLATE].decode().format(plugin_id=PLUGIN_ID, plugin_version=PLUGIN_VERSION)
    (meta / "MANIFEST.MF").write_text(manifest if manifest.endswith("\n") else manifest + "\n")
    (meta / _EXTENSIONS).write_bytes(files[_EXTENSIONS])
    shutil.rmtree(src)
    (staging / _BUILD_INFO).write_text(json.dumps({
        "plugin": f"{PLUGIN_ID}@{PLUGIN_VERSION}", "source_hash": wanted, "built_at": time.time(),
        "lib_dir": str(lib_dir),
    }, indent=1) + "\n")


def _swap_into_place(staging: Path, target: Path) -> None:
    """Rename the finished build onto ``target``; a stale install is moved aside first and then removed."""
    staging.chmod(0o755)
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        staging.rename(target)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{PLUGIN_ID}-old-", dir=staging.parent))
    old.rmdir()
    target.rename(old)
    try:
        staging.rename(target)
    except OSError:
        old.rename(target)
        raise
    shutil.rmtree(old, ignore_errors=True)


def plugin_status(settings: FlowSettings, lib_dir: Path | str | None = None) -> tuple[bool, str]:
    """Whether the plugin is installed, complete and built from the current sources, with a one-line detail.

    ``lib_dir`` defaults to the assembled Nextflow's jar directory from the settings.
    """
    target = plugin_dir(settings)
    if not target.is_dir():
        return False, f"{PLUGIN_ID}@{PLUGIN_VERSION} not installed in {plugins_dir(settings)}"
    problem = _layout_problem(target)
    if problem:
        return False, f"{PLUGIN_ID}@{PLUGIN_VERSION} in {target} is incomplete: {problem}"
    if lib_dir is None:
        lib_dir = nextflow_lib_dir(settings)
    try:
        current = source_hash(Path(lib_dir))
    except PluginBuildError as exc:
        return False, str(exc)
    if _installed_hash(target) != current:
        return False, f"{PLUGIN_ID}@{PLUGIN_VERSION} in {target} is out of date (sources or Nextflow changed)"
    return True, f"{PLUGIN_ID}@{PLUGIN_VERSION} ({target})"
