"""`flow-jupyter` command line: doctor, toolchain, serve, backup, restore, demo-data, pipelines.

Built on traitlets Applications, so every FlowSettings trait is also a flag (``--FlowSettings.root_dir=…``) and the
same Jupyter config files that configure the server extension configure the CLI.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from jupyter_core.application import JupyterApp
from traitlets import Bool, Integer, Unicode, default

from ._version import __version__
from .config import FlowSettings
from .health import run_checks
from .toolchain import NextflowInstall

FLOW_ALIASES = {
    "root": "FlowSettings.root_dir",
    "database-url": "FlowSettings.database_url",
    "executor": "FlowSettings.executor",
}


class FlowCommand(JupyterApp):
    """Base for subcommands: loads jupyter_server_config files and builds FlowSettings from them."""

    version = __version__
    classes = [FlowSettings]
    aliases = FLOW_ALIASES
    flags: dict = {}

    @default("config_file_name")
    def _config_file_name_default(self) -> str:
        return "jupyter_server_config"

    def flow_settings(self) -> FlowSettings:
        return FlowSettings(parent=self)


class DoctorApp(FlowCommand):
    name = "flow-jupyter-doctor"
    description = "Check every component Flow needs; one line each with a fix hint; non-zero exit on failure."

    def start(self) -> None:
        settings = self.flow_settings()
        report = run_checks(settings)
        width = max(len(c.name) for c in report.components)
        for c in report.components:
            line = f"{c.state:<4} {c.name:<{width}}  {c.detail}"
            if not c.ok and c.hint:
                line += f"  — fix: {c.hint}"
            print(line)
        print(f"flow-jupyter {__version__}: " + ("healthy" if report.healthy else f"FAILING: {', '.join(report.failing)}"))
        self.exit(0 if report.healthy else 1)


class ToolchainInstallApp(FlowCommand):
    name = "flow-jupyter-toolchain-install"
    description = "Use nextflow from PATH when new enough; otherwise assemble the pinned version from Maven Central."
    force = Bool(False, help="Re-resolve the jars and rewrite the launcher even if Nextflow already works.").tag(
        config=True
    )
    flags = {"force": ({"ToolchainInstallApp": {"force": True}}, "Reinstall even if Nextflow works.")}

    def start(self) -> None:
        try:
            NextflowInstall(self.flow_settings()).install(force=self.force)
        except (RuntimeError, ValueError) as exc:
            print(f"toolchain install failed: {exc}", file=sys.stderr)
            self.exit(1)


class ToolchainStatusApp(FlowCommand):
    name = "flow-jupyter-toolchain-status"
    description = "Show which Nextflow Flow would use."

    def start(self) -> None:
        install = NextflowInstall(self.flow_settings())
        status = install.status()
        print(f"nextflow: {status.describe()}" + ("" if status.usable else f" — not usable: {status.problem}"))
        print(f"pinned version: {install.settings.nextflow_version}; cache: {install.lib_dir}")
        self.exit(0 if status.usable else 1)


class ToolchainApp(FlowCommand):
    name = "flow-jupyter-toolchain"
    description = "Install or inspect the Nextflow toolchain."
    subcommands = {
        "install": (ToolchainInstallApp, ToolchainInstallApp.description),
        "status": (ToolchainStatusApp, ToolchainStatusApp.description),
    }

    def start(self) -> None:
        if self.subapp is None:
            self.print_subcommands()
            self.exit(2)
        super().start()


class ServeApp(FlowCommand):
    name = "flow-jupyter-serve"
    description = "Start JupyterLab with Flow enabled (extra arguments go to `jupyter lab`)."
    ip = Unicode("127.0.0.1", help="Address JupyterLab listens on.").tag(config=True)
    aliases = {**FLOW_ALIASES, "ip": "ServeApp.ip"}

    def start(self) -> None:
        settings = self.flow_settings()
        env = dict(os.environ, FLOW_ROOT=settings.root_dir, FLOW_EXECUTOR=settings.executor)
        if settings.database_url:
            env["FLOW_DATABASE_URL"] = settings.database_url
        # The extension is enabled by the jupyter_server_config.d file installed with the package.
        argv = [sys.executable, "-m", "jupyterlab", f"--ip={self.ip}", *self.extra_args]
        os.execvpe(argv[0], argv, env)


class BackupApp(FlowCommand):
    name = "flow-jupyter-backup"
    description = "Back up Flow's database and files into DEST (a new or empty directory), with a sha256 manifest."

    def start(self) -> None:
        from .backup import create_backup, failure_message

        if len(self.extra_args) != 1:
            print("usage: flow-jupyter backup DEST [--root=ROOT] [--database-url=URL]", file=sys.stderr)
            self.exit(2)
        settings = self.flow_settings()
        try:
            summary = create_backup(settings.root, settings.resolved_database_url(), Path(self.extra_args[0]))
        except Exception as exc:  # one line for the operator, never a traceback
            print(f"backup failed: {failure_message(exc)}", file=sys.stderr)
            self.exit(1)
        print(summary.describe("backup"))


class RestoreApp(FlowCommand):
    name = "flow-jupyter-restore"
    description = "Restore a backup into an empty Flow root and an empty database, then migrate it."

    def start(self) -> None:
        from .backup import failure_message, restore_backup

        if len(self.extra_args) != 1:
            print("usage: flow-jupyter restore SRC [--root=ROOT] [--database-url=URL]", file=sys.stderr)
            self.exit(2)
        settings = self.flow_settings()
        try:
            summary = restore_backup(Path(self.extra_args[0]), settings.root, settings.resolved_database_url())
        except Exception as exc:  # one line for the operator, never a traceback
            print(f"restore failed: {failure_message(exc)}", file=sys.stderr)
            self.exit(1)
        print(summary.describe("restore"))


class DemoDataApp(FlowCommand):
    name = "flow-jupyter-demo-data"
    description = "Write the demo pipeline's data (reference, reads, sample sheets, barcodes) into DIR."
    reads = Integer(2000, help="Reads (or read pairs) per synthetic sample.").tag(config=True)
    seed = Integer(1, help="Random seed; the same seed writes byte-identical files.").tag(config=True)
    aliases = {**FLOW_ALIASES, "reads": "DemoDataApp.reads", "seed": "DemoDataApp.seed"}

    def start(self) -> None:
        from .pipelines.demo_data import write_demo_data

        if len(self.extra_args) != 1:
            print("usage: flow-jupyter demo-data DIR [--reads=N] [--seed=N]", file=sys.stderr)
            self.exit(2)
        try:
            written = write_demo_data(Path(self.extra_args[0]), reads_per_sample=self.reads, seed=self.seed)
        except (OSError, ValueError) as exc:  # e.g. bowtie2-examples not installed: one line, no traceback
            print(f"demo-data failed: {exc}", file=sys.stderr)
            self.exit(1)
        width = max(len(key) for key in written)
        for key, path in written.items():
            print(f"{key:<{width}}  {path}")


class PipelinesCommand(FlowCommand):
    """Registry commands act directly on Flow's database and store, as an admin (the account running them)."""

    def run_registry(self, fn, *args):
        """``fn(session, actor, *args)`` in one transaction, as the admin running the command."""
        return self.with_host(lambda host, identity: host.run_as(identity, fn, *args))

    def with_host(self, fn):
        """``fn(host, identity)``: for registry changes that open their own short sessions (registering runs git
        with no transaction open)."""
        import getpass

        from .errors import FlowError
        from .host import FlowHost
        from .identity import Identity

        host = FlowHost(self.flow_settings())
        try:
            return fn(host, Identity(getpass.getuser(), is_admin=True))
        except FlowError as exc:
            print(f"{self.name.removeprefix('flow-jupyter-').replace('-', ' ')} failed: {exc.message}",
                  file=sys.stderr)
            self.exit(1)
        finally:
            host.close()


class PipelinesAddApp(PipelinesCommand):
    name = "flow-jupyter-pipelines-add"
    description = "Register a git repository (path or URL) pinned to a tag, branch or commit: add SOURCE [--ref=REF]."
    ref = Unicode("", help="Tag, branch or commit to register (default: the newest tag).").tag(config=True)
    pipeline_name = Unicode("", help="Name in the registry (default: the repository's name).").tag(config=True)
    curated = Bool(False, help="Mark the pipeline as curated by the admins.").tag(config=True)
    aliases = {**FLOW_ALIASES, "ref": "PipelinesAddApp.ref", "name": "PipelinesAddApp.pipeline_name"}
    flags = {"curated": ({"PipelinesAddApp": {"curated": True}}, "Mark as curated.")}

    def start(self) -> None:
        from .pipelines import registry

        if len(self.extra_args) != 1:
            print("usage: flow-jupyter pipelines add SOURCE [--ref=REF] [--name=NAME] [--curated]", file=sys.stderr)
            self.exit(2)
        body = {"source": self.extra_args[0], "curated": self.curated}
        if self.ref:
            body["ref"] = self.ref
        if self.pipeline_name:
            body["name"] = self.pipeline_name
        added = self.with_host(lambda host, identity: registry.register_pipeline(host, identity, body))
        version = added["versions"][-1]
        print(f"added {added['name']} {version['ref']} ({version['commit'][:12]}) from {added['source']}")


class PipelinesListApp(PipelinesCommand):
    name = "flow-jupyter-pipelines-list"
    description = "List registered pipelines and their versions."

    def start(self) -> None:
        from .pipelines import registry

        everything = self.run_registry(lambda s, a: registry.list_pipelines(s, a, limit=100_000))  # one page: all
        for pipeline in everything["items"]:
            versions = ", ".join(v["ref"] for v in pipeline["versions"]) or "no versions"
            marks = " [bundled]" if pipeline["bundled"] else (" [curated]" if pipeline["curated"] else "")
            print(f"{pipeline['name']}{marks}: {versions}  ({pipeline['source']})")


class PipelinesRemoveApp(PipelinesCommand):
    name = "flow-jupyter-pipelines-remove"
    description = "Remove a registered pipeline (by name or id) and its checkouts."

    def start(self) -> None:
        from .pipelines import registry

        if len(self.extra_args) != 1:
            print("usage: flow-jupyter pipelines remove NAME", file=sys.stderr)
            self.exit(2)
        settings = self.flow_settings()
        self.run_registry(lambda s, a: registry.remove_pipeline(s, a, _storage(settings), self.extra_args[0]))
        print(f"removed {self.extra_args[0]}")


class PipelinesApp(FlowCommand):
    name = "flow-jupyter-pipelines"
    description = "Add, list and remove pipelines in the registry."
    subcommands = {
        "add": (PipelinesAddApp, PipelinesAddApp.description),
        "list": (PipelinesListApp, PipelinesListApp.description),
        "remove": (PipelinesRemoveApp, PipelinesRemoveApp.description),
    }

    def start(self) -> None:
        if self.subapp is None:
            self.print_subcommands()
            self.exit(2)
        super().start()


def _storage(settings: FlowSettings):
    from .data.storage import Storage

    return Storage(settings.root_dir)


class FlowCLI(JupyterApp):
    name = "flow-jupyter"
    version = __version__
    description = "flow_jupyter: Nextflow pipelines on Slurm from Jupyter."
    subcommands = {
        "doctor": (DoctorApp, DoctorApp.description),
        "toolchain": (ToolchainApp, ToolchainApp.description),
        "serve": (ServeApp, ServeApp.description),
        "backup": (BackupApp, BackupApp.description),
        "restore": (RestoreApp, RestoreApp.description),
        "demo-data": (DemoDataApp, DemoDataApp.description),
        "pipelines": (PipelinesApp, PipelinesApp.description),
    }

    def start(self) -> None:
        if self.subapp is None:
            self.print_subcommands()
            self.exit(2)
        super().start()


def main(argv: list[str] | None = None) -> None:
    FlowCLI.launch_instance(argv)
