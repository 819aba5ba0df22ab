"""Reports: find a run's reports (tower.yml globs), read MultiQC data, serve HTML reports sandboxed.

Pure Python on purpose (no tornado, no DB) so API handlers, widgets and scripts share one implementation.
"""
from flow_jupyter.reports.discovery import (
    DEFAULT_SPECS,
    FoundReport,
    ReportSpec,
    find_reports,
    glob_to_regex,
    report_globs,
)
from flow_jupyter.reports.multiqc import (
    MAX_MULTIQC_JSON_BYTES,
    MultiQCDataError,
    general_stats,
    load_multiqc_data,
)
from flow_jupyter.reports.serving import REPORT_CSP, STORAGE_SHIM, guess_mimetype, report_headers, sandbox_html

__all__ = [
    "DEFAULT_SPECS", "FoundReport", "ReportSpec", "find_reports", "glob_to_regex", "report_globs",
    "MAX_MULTIQC_JSON_BYTES", "MultiQCDataError", "general_stats", "load_multiqc_data",
    "REPORT_CSP", "STORAGE_SHIM", "guess_mimetype", "report_headers", "sandbox_html",
]
