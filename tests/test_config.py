"""FlowSettings: environment defaults, and values that would reach an #SBATCH line are checked."""
from __future__ import annotations

from pathlib import Path

import pytest
from traitlets import TraitError

from flow_jupyter.config import FlowSettings


def test_environment_supplies_root_database_and_executor(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FLOW_ROOT", str(tmp_path / "store"))
    monkeypatch.setenv("FLOW_EXECUTOR", "slurm")
    settings = FlowSettings()
    assert settings.root_dir == str(tmp_path / "store")
    assert settings.resolved_database_url() == f"sqlite:///{tmp_path / 'store' / 'flow.sqlite'}"
    assert "slurm" in settings.required()


def test_local_executor_does_not_require_slurm(monkeypatch) -> None:
    monkeypatch.delenv("FLOW_EXECUTOR", raising=False)
    assert "slurm" not in FlowSettings().required()


@pytest.mark.parametrize(
    ("trait", "value"),
    [
        ("slurm_queue", "debug\n#SBATCH --uid=0"),
        ("slurm_account", "lab; rm -rf /"),
        ("slurm_walltime", "1:00:00 --wrap=x"),
        ("slurm_memory", "2G'"),
    ],
)
def test_sbatch_values_with_unsafe_characters_are_rejected(trait: str, value: str) -> None:
    with pytest.raises(TraitError, match="#SBATCH"):
        FlowSettings(**{trait: value})


def test_extra_directives_must_be_single_options() -> None:
    assert FlowSettings(slurm_job_extra_directives=["--qos=normal"]).slurm_job_extra_directives == ["--qos=normal"]
    with pytest.raises(TraitError):
        FlowSettings(slurm_job_extra_directives=["--qos=normal\n#SBATCH --uid=0"])
    with pytest.raises(TraitError):
        FlowSettings(slurm_job_script_prologue=["module load java\nrm -rf /"])
