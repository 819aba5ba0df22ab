"""Executions: how Flow starts Nextflow runs and follows them live.

Starting: launch.py (argv + params file), backends/ (a local process group or a Slurm head job), runfiles.py (the
names of every file in a run directory). Following: tailing.py (new lines of growing files), parsers.py (pure
parsers of event lines, trace rows and log lines), runstate.py (what is known of a run, as JSON), monitor.py (ties
them into a poll), manager.py (the host's loop over execution rows), publish.py and outputs.py (what a run leaves).
The API's side: service.py (plain functions over execution rows) and status.py (the status words).

The `nf_plugin` directory holds the Groovy sources of Flow's own Nextflow plugin (``nf-flow``), which writes one JSON
event per line while a run progresses, so Flow reads structured progress instead of parsing Nextflow's log. It is
compiled and installed by `flow_jupyter.toolchain.nf_plugin`.
"""
