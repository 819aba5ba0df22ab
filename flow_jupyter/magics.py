"""``%flow`` and ``%%flow``: Flow from a notebook line.

Every subcommand is one client call; the server checks everything. A failing ``%flow`` raises, so
``run = %flow run ...`` never quietly leaves ``run`` None and "Run All" stops at that cell — but neither failure
buries the notebook in a traceback:

* bad arguments (unknown subcommand, missing pipeline, ``-p`` without ``=``, a cell body that is not YAML) raise
  IPython's :class:`~IPython.core.error.UsageError`, which IPython shows as one ``UsageError: ...`` message with
  the usage line;
* server refusals raise the client's :class:`~flow_jupyter.client.FlowError` as it is (``reason``, ``message``,
  ``field``, ``errors``), shown as ``FlowError: reason: message (field)`` plus one line per problem instead of a
  traceback through the HTTP code.

Values that the API needs in a special form are converted on the way: ``datafile:7`` (or ``flow://datafile/7``)
becomes ``{"datafile": 7}``, a local file path becomes an absolute path (or, with
``FlowMagics.upload_local_paths``, an uploaded data file), and numbers and booleans get the type the pipeline's
form declares.
"""
from __future__ import annotations

import argparse
import functools
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from traitlets import Bool, Unicode

from .client.errors import FlowError
from .execution.status import CANCELLED
from .client.references import datafile_reference

HELP = """\
%flow — Flow pipelines from the notebook

  %flow help                                  this text
  %flow ls [PROJECT] [--sample S] [--name PREFIX] [--limit N]
                                              data files (all projects without PROJECT)
  %flow upload PATH [--project P] [--sample S]
                                              upload a local file (resumable); returns the DataFile
  %flow pipelines                             registered pipelines
  %flow run PIPELINE [--NAME VALUE ...] [--project P] [--backend local|slurm] [--version V] [-p NAME=VALUE]
                                              launch; returns the Execution (run = %flow run demo --input x.csv)
  %flow status [ID]                           recent executions, or one execution
  %flow logs ID                               the Nextflow log of an execution
  %flow cancel ID                             stop an execution
  %flow resume ID [--NAME VALUE ...]          run again with -resume (changed params optional)
  %flow report ID                             show the execution's report (MultiQC) in a sandboxed frame

  %%flow run PIPELINE --project P             the cell body holds the params as YAML
  Values: datafile:<id> names a Flow data file; a local file path is sent as an absolute path.
  -p NAME=VALUE sets a param whose name clashes with an option (e.g. -p version=true).
"""

SUBCOMMANDS = ("help", "ls", "upload", "pipelines", "run", "status", "logs", "cancel", "resume", "report")
TRUE_WORDS = frozenset({"true", "yes", "on", "1"})
FALSE_WORDS = frozenset({"false", "no", "off", "0"})


GENERAL_USAGE = "usage: %flow {" + ",".join(SUBCOMMANDS) + "} ...  (%flow help for more)"


class BadArguments(Exception):
    """A mistake in a ``%flow`` command line, with the usage of the (sub)command at fault when known.
    :meth:`FlowMagics.flow` turns it into IPython's UsageError (that exact class is what IPython shows without a
    traceback)."""

    def __init__(self, message: str, usage: str = ""):
        super().__init__(message)
        self.usage = usage


class QuietParser(argparse.ArgumentParser):
    """argparse that raises instead of exiting the kernel: every error (``exit_on_error=False`` alone misses several,
    e.g. missing arguments) goes through :meth:`error`, which raises with the usage of the (sub)command at fault."""

    commands: Mapping[str, argparse.ArgumentParser]
    """The subcommands' parsers by name (set by :func:`build_parser`), for their usage lines."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise BadArguments(message, self.format_usage().strip())

    def exit(self, status: int = 0, message: str | None = None) -> None:  # type: ignore[override]
        raise BadArguments(message or "", self.format_usage().strip())


def build_parser() -> QuietParser:
    parser = QuietParser(prog="%flow", add_help=False, allow_abbrev=False)
    commands = parser.add_subparsers(dest="command", metavar="{" + ",".join(SUBCOMMANDS) + "}")
    # allow_abbrev off: --ver is a pipeline's param, not short for --version
    quiet: dict[str, Any] = {"add_help": False, "allow_abbrev": False}
    commands.add_parser("help", **quiet)
    ls = commands.add_parser("ls", **quiet)
    ls.add_argument("project", nargs="?")
    ls.add_argument("--sample")
    ls.add_argument("--name")
    ls.add_argument("--limit", type=int, default=50)
    upload = commands.add_parser("upload", **quiet)
    upload.add_argument("path")
    upload.add_argument("--project")
    upload.add_argument("--sample")
    commands.add_parser("pipelines", **quiet)
    run = commands.add_parser("run", **quiet, usage="%(prog)s PIPELINE [--NAME VALUE ...] [--project P] "
                                                   "[--backend local|slurm] [--version V] [-p NAME=VALUE]")
    run.add_argument("pipeline")
    run.add_argument("--project")
    run.add_argument("--backend", choices=("local", "slurm"))
    run.add_argument("--version")
    run.add_argument("-p", "--param", dest="assignments", action="append", default=[], metavar="NAME=VALUE")
    status = commands.add_parser("status", **quiet)
    status.add_argument("id", nargs="?")
    for name in ("logs", "cancel", "report"):
        commands.add_parser(name, **quiet).add_argument("id")
    resume = commands.add_parser("resume", **quiet, usage="%(prog)s ID [--NAME VALUE ...] [-p NAME=VALUE]")
    resume.add_argument("id")
    resume.add_argument("-p", "--param", dest="assignments", action="append", default=[], metavar="NAME=VALUE")
    parser.commands = commands.choices
    return parser


def split_params(tokens: list[str]) -> dict[str, str | bool]:
    """``--name value``, ``--name=value`` and bare ``--flag`` (True) from the arguments argparse did not know."""
    params: dict[str, str | bool] = {}
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if not token.startswith("--") or token == "--":
            raise BadArguments(f"unexpected argument {token!r}: parameters are given as --name value")
        name, sep, value = token[2:].partition("=")
        if not name:
            raise BadArguments(f"unexpected argument {token!r}")
        if sep:
            params[name] = value
        elif index + 1 < len(tokens) and not tokens[index + 1].startswith("--"):
            params[name] = tokens[index + 1]
            index += 1
        else:
            params[name] = True
        index += 1
    return params


def assignments(items: list[str]) -> dict[str, str]:
    params = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise BadArguments(f"-p takes NAME=VALUE, not {item!r}")
        params[name] = value
    return params


def coerce(value: Any, field: dict[str, Any] | None) -> Any:
    """A command-line string as the type the form declares (numbers, booleans); anything unsure stays a string,
    for the server to accept or to name in its error."""
    if not isinstance(value, str) or field is None:
        return value
    types = field.get("types") or ([field["type"]] if field.get("type") else [])
    word = value.strip().lower()
    if "boolean" in types and word in TRUE_WORDS | FALSE_WORDS:
        return word in TRUE_WORDS
    if "integer" in types:
        try:
            return int(value)
        except ValueError:
            pass
    if "number" in types:
        try:
            return float(value)
        except ValueError:
            pass
    return value


@magics_class
class FlowMagics(Magics):
    """``%flow`` / ``%%flow``; ``%flow help`` lists the subcommands."""

    default_project = Unicode("", config=True, help="Project (name or id) used when a command gives no "
                                                    "--project. Empty: the only project you have, else ask.")
    upload_local_paths = Bool(False, config=True, help="Send a local file named as a parameter value by uploading "
                                                       "it into the run's project ({'datafile': id}) instead of "
                                                       "as its absolute path. Needed when the server cannot read "
                                                       "the kernel's disk (e.g. a hub with allow_host_paths off).")

    def __init__(self, shell: Any = None, client: Any = None, **kwargs: Any):
        super().__init__(shell=shell, **kwargs)
        self._client = client
        self.parser = build_parser()

    @property
    def client(self) -> Any:
        if self._client is None:
            from .client import connect

            self._client = connect()
        return self._client

    @client.setter
    def client(self, value: Any) -> None:
        self._client = value

    # --- entry point ----------------------------------------------------------------------------------------

    @line_cell_magic
    def flow(self, line: str, cell: str | None = None) -> Any:
        """Flow pipelines, data and executions: ``%flow help``. Raises UsageError for a bad command line and the
        client's FlowError for a server refusal."""
        try:
            return self._dispatch(line, cell)
        except BadArguments as error:
            raise UsageError(f"{error}\n{error.usage.strip() or GENERAL_USAGE}") from None
        except argparse.ArgumentError as error:
            raise UsageError(f"{error}\n{GENERAL_USAGE}") from None
        except FlowError as error:
            # Raised as it is (callers may catch FlowError and read reason/field); only its display is shortened.
            error._render_traceback_ = functools.partial(refusal_lines, error)  # type: ignore[attr-defined]
            raise

    def _dispatch(self, line: str, cell: str | None) -> Any:
        try:
            tokens = shlex.split(line)
        except ValueError as error:
            raise BadArguments(f"cannot read the arguments: {error}") from None
        if not tokens:
            raise BadArguments("give a subcommand")
        if tokens[0] in ("-h", "--help"):
            print(HELP)
            return None
        command = None
        try:
            args, extra = self.parser.parse_known_args(tokens)
            command = args.command
            if command is None:
                raise BadArguments(f"unknown subcommand {tokens[0]!r}")
            if extra and command not in ("run", "resume"):
                raise BadArguments(f"unrecognized arguments: {' '.join(extra)}")
            if cell is not None and command not in ("run", "resume"):
                raise BadArguments("only `%%flow run` and `%%flow resume` take a cell body (the params as YAML)")
            return getattr(self, f"_{command}")(args, extra, cell)
        except BadArguments as error:
            if not error.usage and command:
                error.usage = self.parser.commands[command].format_usage()
            raise

    # --- subcommands ----------------------------------------------------------------------------------------

    def _help(self, args: Any, extra: list[str], cell: str | None) -> None:
        print(HELP)

    def _ls(self, args: Any, extra: list[str], cell: str | None) -> Any:
        import pandas as pd

        project = self.client.project(args.project).id if args.project else None
        sample = args.sample
        if sample is not None and project is not None:
            sample = next((s.id for s in self.client.samples(project) if sample in (s.name, str(s.id))), sample)
        files = self.client.files(project=project, sample=sample, name=args.name, limit=args.limit)
        columns = ["id", "filename", "type", "size", "project", "sample", "origin", "created_at"]
        frame = pd.DataFrame([{c: getattr(f, c, None) for c in columns} for f in files], columns=columns)
        if getattr(files, "next", None):
            print(f"(first {len(frame)} files; use --limit for more)")
        return frame

    def _upload(self, args: Any, extra: list[str], cell: str | None) -> Any:
        path = Path(args.path).expanduser()
        if not path.is_file():
            raise BadArguments(f"no such file: {args.path}")
        project = self._project(args.project)
        datafile = self.client.upload(path, project.id, sample=self._sample(project, args.sample))
        print(f"Uploaded {datafile.filename} as data file #{datafile.id} (datafile:{datafile.id}) "
              f"into {project.name}.")
        return datafile

    def _pipelines(self, args: Any, extra: list[str], cell: str | None) -> Any:
        import pandas as pd

        rows = []
        for pipeline in self.client.pipelines():
            refs = [str(v.get("ref")) if isinstance(v, dict) else str(v) for v in (pipeline.versions or [])]
            rows.append({"name": pipeline.name, "description": pipeline.description, "versions": ", ".join(refs)})
        return pd.DataFrame(rows, columns=["name", "description", "versions"])

    def _run(self, args: Any, extra: list[str], cell: str | None) -> Any:
        given = {**self._cell_params(cell), **split_params(extra), **assignments(args.assignments)}
        project = self._project(args.project)
        params = self._params(args.pipeline, args.version, given, project)
        execution = self.client.launch(args.pipeline, params=params, project=project.id, version=args.version,
                                       backend=args.backend)
        print(f"Launched {args.pipeline} as execution {execution.id} in {project.name}.")
        return execution

    def _status(self, args: Any, extra: list[str], cell: str | None) -> Any:
        import pandas as pd

        if args.id:
            return self.client.execution(args.id)
        columns = ["id", "status", "project", "backend", "created_at", "finished_at"]
        runs = [{c: (getattr(e, "raw", None) or {}).get(c, getattr(e, c, None)) for c in columns}
                for e in self.client.executions()]
        runs.sort(key=lambda r: r["created_at"] or "", reverse=True)
        return pd.DataFrame(runs, columns=columns)

    def _logs(self, args: Any, extra: list[str], cell: str | None) -> None:
        print(self.client.execution(args.id).logs(), end="")

    def _cancel(self, args: Any, extra: list[str], cell: str | None) -> None:
        execution = self.client.execution(args.id).cancel()
        state = "cancel requested" if getattr(execution, "status", None) != CANCELLED else "cancelled"
        print(f"Execution {execution.id}: {state} (status {execution.status}).")

    def _resume(self, args: Any, extra: list[str], cell: str | None) -> Any:
        given = {**self._cell_params(cell), **split_params(extra), **assignments(args.assignments)}
        original = self.client.execution(args.id)
        changes = self._params(_pipeline_name(original), None, given, None, execution=original) if given else {}
        execution = original.resume(**changes)
        print(f"Resumed {original.id} as execution {execution.id}.")
        return execution

    def _report(self, args: Any, extra: list[str], cell: str | None) -> None:
        from IPython.display import display

        try:
            from .widgets import ReportViewer
        except ImportError as error:
            raise BadArguments(f"`%flow report` shows the report in a widget and needs ipywidgets ({error})") from None
        display(ReportViewer(self.client.execution(args.id), client=self.client))

    # --- helpers --------------------------------------------------------------------------------------------

    def _project(self, name: str | None) -> Any:
        wanted = name or self.default_project
        if wanted:
            return self.client.project(wanted)
        projects = self.client.projects()
        if len(projects) == 1:
            return projects[0]
        names = ", ".join(p.name for p in projects) or "none yet"
        raise BadArguments(f"give --project (your projects: {names})")

    def _sample(self, project: Any, sample: str | None) -> Any:
        if sample is None:
            return None
        for candidate in self.client.samples(project.id):
            if sample in (candidate.name, str(candidate.id)):
                return candidate.id
        return self.client.create_sample(project.id, sample).id

    @staticmethod
    def _cell_params(cell: str | None) -> dict[str, Any]:
        if not cell or not cell.strip():
            return {}
        try:
            params = yaml.safe_load(cell)
        except yaml.YAMLError as error:
            raise BadArguments(f"the cell body is not YAML: {str(error).splitlines()[0]}") from None
        if not isinstance(params, dict):
            raise BadArguments("the cell body must be a YAML mapping of parameter names to values")
        return params

    def _params(self, pipeline: str | None, version: str | None, given: dict[str, Any], project: Any,
                execution: Any = None) -> dict[str, Any]:
        """Values as the API takes them: typed by the form, data files as references, local files resolved."""
        fields = self._form_fields(pipeline, version, execution) if any(isinstance(v, str) for v in given.values()) \
            else {}
        project_id = project.id if project is not None else getattr(execution, "project", None)
        return {name: self._value(value, fields.get(name), project_id) for name, value in given.items()}

    def _form_fields(self, pipeline: str | None, version: str | None, execution: Any) -> dict[str, Any]:
        """Fields by name from the pipeline's form; for a resume, typed like the original run's values."""
        fields: dict[str, Any] = {}
        if execution is not None:
            original = getattr(execution, "params", None) or (getattr(execution, "detail", None) or {}).get("params")
            for name, value in (original or {}).items():
                kind = _json_type(value)
                if kind:
                    fields[name] = {"name": name, "types": [kind]}
        if pipeline is not None:
            answer = self.client.pipeline(pipeline).form(version)
            model = answer.get("form", answer)
            fields.update({f["name"]: f for g in model.get("groups") or [] for f in g.get("fields") or []})
        return fields

    def _value(self, value: Any, field: dict[str, Any] | None, project_id: Any) -> Any:
        if isinstance(value, dict):
            return value
        if not isinstance(value, str):
            return value
        reference = datafile_reference(value)
        if reference:
            return reference
        local = Path(value).expanduser()
        if value and not value.startswith(("flow://", "http://", "https://", "s3://")) and local.is_file():
            if self.upload_local_paths and project_id is not None:
                return {"datafile": self.client.upload(local, project_id).id}
            return str(local.resolve())
        return coerce(value, field)


def _pipeline_name(execution: Any) -> str | None:
    name = getattr(execution, "pipeline", None)
    return name if isinstance(name, str) else None


def _json_type(value: Any) -> str | None:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return "string" if isinstance(value, str) else None


def refusal_lines(error: FlowError) -> list[str]:
    """How a server refusal from ``%flow`` shows in the notebook: ``FlowError: reason: message (field)``, then one
    line per problem when the server named several (every bad parameter, every bad sample-sheet cell)."""
    where = f" ({error.field})" if error.field else ""
    lines = [f"FlowError: {error.reason}: {error.message}{where}"]
    for item in error.errors:
        lines.append(f"  {item.get('field') or '-'}: {item.get('message') or item.get('reason')}")
    return lines


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext flow_jupyter`` (or ``flow_jupyter.magics``): register ``%flow`` / ``%%flow``, and — when
    ipywidgets is installed — import the widgets, so runs display as live monitors as they do in the launcher."""
    ipython.register_magics(FlowMagics(ipython))
    try:
        from .widgets import register_displays
    except ModuleNotFoundError as error:
        if error.name is None or not error.name.startswith(("ipywidgets", "flow_jupyter.widgets")):
            raise  # a widget module that fails for another reason is a bug, not a missing extra
        return  # no ipywidgets here: client objects keep their plain views
    register_displays()
