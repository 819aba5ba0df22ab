"""The external toolchain Flow drives: a real Nextflow (found on PATH or assembled from Maven Central)."""
from .nextflow_install import NextflowInstall, NextflowStatus, parse_nextflow_version

__all__ = ["NextflowInstall", "NextflowStatus", "parse_nextflow_version"]
