"""Where the assembled toolchain lives, from the settings alone.

Both the Nextflow installer (nextflow_install.py) and the plugin builder (nf_plugin.py) need the directory of
Nextflow's jars: the installer fills it, the builder compiles against it. It lives here so neither imports the
other for it.
"""
from __future__ import annotations

from pathlib import Path

from ..config import FlowSettings


def nextflow_lib_dir(settings: FlowSettings) -> Path:
    """The jars of the pinned Nextflow assembled from Maven Central: ``<cache_dir>/nextflow/<version>/lib``."""
    return Path(settings.cache_dir) / "nextflow" / settings.nextflow_version / "lib"
