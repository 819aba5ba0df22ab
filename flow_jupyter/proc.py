"""The one way flow_jupyter runs a program: an argv list, never a shell string.

Every external command (java, nextflow, sinfo, sbatch, mvn, fastqc, multiqc, pg_dump …) goes through `run`, so a
failure always carries the command, its exit status and what it printed.
"""
from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


class CommandError(RuntimeError):
    """A command could not be started, timed out or exited non-zero."""

    def __init__(self, argv: Sequence[str], returncode: int | None, stdout: str, stderr: str, why: str):
        self.argv = list(argv)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.why = why
        super().__init__(f"{argv[0]}: {why}")

    def summary(self) -> str:
        """The most useful line of what the command printed, for one-line reports."""
        text = (self.stderr or self.stdout or "").strip().splitlines()
        last = text[-1].strip() if text else ""
        return f"{self.why}: {last}" if last else self.why


@dataclass(frozen=True)
class Result:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str


def run(
    argv: Sequence[str],
    *,
    timeout: float = 60.0,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    check: bool = True,
    input: str | None = None,
) -> Result:
    """Run ``argv`` to completion and capture its output as text.

    Raises CommandError when the program is missing, exceeds ``timeout`` seconds, or (with ``check``) exits non-zero.
    """
    argv = [str(a) for a in argv]
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
    except FileNotFoundError:
        raise CommandError(argv, None, "", "", "not found on PATH") from None
    except PermissionError:
        raise CommandError(argv, None, "", "", "not executable") from None
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        raise CommandError(argv, None, out, err, f"timed out after {timeout:g} s") from None
    result = Result(argv, done.returncode, done.stdout, done.stderr)
    if check and done.returncode != 0:
        raise CommandError(argv, done.returncode, done.stdout, done.stderr, f"exited with status {done.returncode}")
    return result
