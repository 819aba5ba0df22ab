"""Who a process is, from /proc (Linux): a pid with its start time and the machine's boot id names one process for
good, so a reused pid or a reboot is never mistaken for the process that was recorded. Used for local head jobs
(execution/backends/local.py) and for the hosts named in claim leases (db/leases.py)."""
from __future__ import annotations

from pathlib import Path


def stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat from field 3 (state) on; the command name may hold spaces and parentheses."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return text[text.rindex(")") + 2:].split()


def process_start_ticks(pid: int) -> int | None:
    """Start time of a process in clock ticks after boot (field 22): with the pid, a unique process identity."""
    fields = stat_fields(pid)
    return int(fields[19]) if fields else None


def boot_id() -> str:
    return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
