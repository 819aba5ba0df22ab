"""`flow-jupyter pipelines add|list|remove` on a real store and a real git repository."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def flow(*args: str, root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flow_jupyter", *args, f"--root={root}"], capture_output=True,
                          text=True, timeout=180, env=dict(os.environ, FLOW_DATABASE_URL=""))


def test_a_pipeline_is_added_listed_and_removed_from_the_command_line(tmp_path: Path) -> None:
    repo = tmp_path / "rnaseq-lite"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    (repo / "main.nf").write_text("params.reads = 'x'\nworkflow {}\n")
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "first"], check=True)
    subprocess.run([*git, "tag", "v1.2"], check=True)
    root = tmp_path / "store"

    added = flow("pipelines", "add", str(repo), "--curated", root=root)
    listed = flow("pipelines", "list", root=root)
    refused = flow("pipelines", "add", str(tmp_path / "missing"), root=root)
    removed = flow("pipelines", "remove", "rnaseq-lite", root=root)
    after = flow("pipelines", "list", root=root)

    assert added.returncode == 0, added.stderr
    assert added.stdout.startswith("added rnaseq-lite v1.2 (")
    assert "rnaseq-lite [curated]: v1.2" in listed.stdout and "demo [bundled]" in listed.stdout
    assert refused.returncode == 1 and "is not a directory" in refused.stderr and "Traceback" not in refused.stderr
    assert removed.returncode == 0
    assert "rnaseq-lite" not in after.stdout
    assert not (root / "pipelines" / "1").exists()
