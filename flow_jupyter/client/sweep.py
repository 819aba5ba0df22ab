"""Parameter sweeps (one launch per point of a grid) and comparing two runs side by side."""
from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

from .errors import FlowError
from .models import Execution
from .progress import Progress, ProgressArg, poll_until

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from .api import FlowClient


class Sweep(list):
    """The executions of a sweep, in grid order; ``grid`` keeps the parameters that vary."""

    def __init__(self, executions: list[Execution], grid: dict[str, list[Any]]):
        super().__init__(executions)
        self.grid = grid

    def refresh(self) -> "Sweep":
        for run in self:
            run.refresh()
        return self

    @property
    def finished(self) -> bool:
        return all(run.finished for run in self)

    def wait(self, timeout: float | None = None, progress: ProgressArg = True) -> "Sweep":
        """Poll every run until all ended or ``timeout`` seconds pass; returns self either way."""
        interval = self[0].client.settings.poll_interval if self else 1.0
        with Progress(progress, len(self), "sweep", unit="run") as bar:
            def done() -> bool:
                for run in self:
                    if not run.finished:
                        run.refresh()
                bar.update_to(sum(run.finished for run in self))
                return self.finished

            poll_until(done, timeout, interval)
        return self

    def frame(self) -> "pd.DataFrame":
        """One row per run: the swept parameters, then id and status."""
        import pandas as pd

        rows = [{**{key: run.params.get(key) for key in self.grid}, "id": run.id, "status": run.status}
                for run in self]
        return pd.DataFrame(rows, columns=[*self.grid, "id", "status"])

    def _ipython_display_(self) -> None:
        from .display import show_sweep

        show_sweep(self)


def grid_points(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, the first key varying slowest."""
    keys = list(grid)
    for key in keys:
        if isinstance(grid[key], (str, bytes)) or not hasattr(grid[key], "__iter__"):
            raise FlowError(f"Sweep values of {key!r} must be a list.", reason="invalid_grid", field=f"/{key}")
    return [dict(zip(keys, values)) for values in itertools.product(*(list(grid[k]) for k in keys))]


def run_sweep(client: "FlowClient", pipeline: Any, base_params: dict[str, Any] | None, grid: dict[str, list[Any]],
              **launch_kwargs: Any) -> Sweep:
    """Launch ``pipeline`` once per grid point with ``base_params`` updated by the point. Every point is checked by
    the server before it is stored; if one is refused, the runs already launched are cancelled and the error is
    raised, so a sweep never half-starts."""
    points = grid_points(grid)
    if not points:
        raise FlowError("The sweep grid is empty.", reason="invalid_grid")
    if launch_kwargs.get("provenance") is None:
        launch_kwargs["provenance"] = client.capture_provenance()
    launched: list[Execution] = []
    try:
        for point in points:
            launched.append(client.launch(pipeline, {**(base_params or {}), **point}, **launch_kwargs))
    except FlowError:
        for run in launched:
            try:
                run.cancel()
            except FlowError:
                pass
        raise
    return Sweep(launched, {key: list(values) for key, values in grid.items()})


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value and not (len(value) == 1 and "datafile" in value):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, dict) and "datafile" in value:
        value = f"flow://datafile/{value['datafile']}"
    return {prefix: value}


def _label(run: Execution, other: Execution) -> str:
    return run.id[:8] if run.id[:8] != other.id[:8] else run.id


def _general_stats(run: Execution) -> "pd.DataFrame":
    import pandas as pd

    try:
        return run.multiqc().get("general_stats", pd.DataFrame())
    except FlowError as exc:
        if exc.status == 404:  # no MultiQC data in this run: nothing to compare
            return pd.DataFrame()
        raise


def compare(run_a: Execution, run_b: Execution) -> dict[str, Any]:
    """What differs between two runs: ``params`` (only differing ones, a row per parameter), ``versions``
    (pipeline, ref, commit, backend) and ``general_stats`` (MultiQC's table of both, indexed by run and sample)."""
    import pandas as pd

    a, b = _label(run_a, run_b), _label(run_b, run_a)
    left, right = _flatten(run_a.params or {}), _flatten(run_b.params or {})
    differing = sorted(key for key in set(left) | set(right) if left.get(key) != right.get(key))
    params = pd.DataFrame({a: [left.get(k) for k in differing], b: [right.get(k) for k in differing]},
                          index=pd.Index(differing, name="param"))
    info = {}
    for label, run in ((a, run_a), (b, run_b)):
        version = run._flow.version_info(run.pipeline_version) or {}
        info[label] = {"pipeline": version.get("pipeline"), "version": version.get("ref"),
                       "commit": version.get("commit"), "backend": run.backend}
    versions = pd.DataFrame(info)
    versions.index.name = "field"
    stats = {label: frame for label, frame in ((a, _general_stats(run_a)), (b, _general_stats(run_b)))
             if not frame.empty}
    general = pd.concat(stats, names=["run"]) if stats else pd.DataFrame()
    return {"params": params, "versions": versions, "general_stats": general}
