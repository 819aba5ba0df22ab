"""Test pipeline repositories are real git repositories: one way to run git on them, with a fixed author."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path


def git(repo: Path, *args: str) -> None:
    """``git -C repo args…`` as a test's fixed author (no global git config needed), failing loudly."""
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.org", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@example.org")
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, env=env, timeout=60)
