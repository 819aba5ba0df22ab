"""The names of the files in a run directory, in one place.

A run directory is Nextflow's launch directory: Flow writes the params file and the run config there, Nextflow its
log, trace and work directory, Flow's plugin its events file, and the backends their evidence of the head job (which
job it is, how it ended, whether a cancel was asked for). Every module that reads or writes one of these names
takes it from here. Names are relative to the run directory. Standard library only.

A resumed execution reuses its original's run directory (Nextflow's ``-resume`` needs the same launch directory),
so the files the monitor follows are named per execution (`RunFiles.of`): the events file always, the trace file
and the log for a resume, so the monitor of one execution never reads another's history.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: The parameters, as JSON, passed with ``-params-file``: the only way user values reach Nextflow.
PARAMS_FILE = "params.json"
#: The run config Flow generates (plugin, Slurm executor): only values Flow controls.
CONFIG_FILE = "flow.config"
#: Nextflow's work directory (one subdirectory per task).
WORK_DIR = "work"
#: Resolved copies of the sample sheets a launch names (execution/inputs.py).
INPUTS_DIR = "inputs"
#: The plugin's events file when ``FLOW_EVENTS_FILE`` is not set; the observer's DEFAULT_FILE_NAME says the same.
EVENTS_FILE = "events.ndjson"
#: The trace file (``-with-trace``).
TRACE_FILE = "trace.txt"
#: Nextflow's log (``-log``).
LOG_FILE = ".nextflow.log"
#: The head job (a `BackendJob` as JSON), written at submit time.
HEAD_FILE = "head.json"
#: The head process's exit code, written atomically when it ends.
EXIT_CODE_FILE = "exit_code"
#: Written by a cancel, so a run that was killed hard (no exit code) still reads as cancelled.
CANCEL_FILE = "cancel_requested"
#: What a local head process prints (stdout, stderr).
LOCAL_STDOUT_FILE = "nextflow.out"
LOCAL_STDERR_FILE = "nextflow.err"
#: What a Slurm head job prints (``sbatch --output``).
SLURM_OUTPUT_FILE = "head.out"


@dataclass(frozen=True)
class RunFiles:
    """The three files the monitor of one execution follows: the plugin's events, the trace file and the log."""

    events: str = EVENTS_FILE
    trace: str = TRACE_FILE
    log: str = LOG_FILE

    @classmethod
    def of(cls, execution_uuid: str, resumed: bool) -> RunFiles:
        """An execution's own names: its events file always; for a resume also its trace file and log."""
        events = f"events-{execution_uuid}.ndjson"
        if not resumed:
            return cls(events=events)
        return cls(events=events, trace=f"trace-{execution_uuid}.txt", log=f"nextflow-{execution_uuid}.log")


def run_files(execution: Any) -> RunFiles:
    """The files of a stored execution (anything with ``uuid`` and ``resumed_from_id``)."""
    return RunFiles.of(execution.uuid, execution.resumed_from_id is not None)
