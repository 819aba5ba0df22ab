"""Executions: how Flow starts Nextflow runs and follows them live.

The `nf_plugin` directory holds the Groovy sources of Flow's own Nextflow plugin (``nf-flow``), which writes one JSON
event per line while a run progresses, so Flow reads structured progress instead of parsing Nextflow's log. It is
compiled and installed by `flow_jupyter.toolchain.nf_plugin`.
"""
