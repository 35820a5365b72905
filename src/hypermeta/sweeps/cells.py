"""A sweep cut into cells, the units of work of a sweep on a Ray cluster.

A cell is one environment, one method (and state-embedding size) and a group of its
(lr, seed) runs, trained in one compiled program on one worker: an ordinary run directory.
A cell holding all runs of a method is the local sweep's run directory, OUT/ENV/METHOD;
smaller cells split it into OUT/ENV/METHOD/lr-LR_seed-S (`+` joins several values), e.g.
OUT/grid-world/rnn-hn/lr-0.0003_seed-73. `hypermeta report` identifies runs by (env, method,
state embedding, lr, seed), not by directory, so it merges either layout unchanged.

How many runs a cell holds follows its resources: on a GPU all runs of a method share one
program (vmapped, as `hypermeta train` does); on a CPU, vmapping runs is memory-bound (see
TrainConfig.parallel_runs), so one run per cell lets the cluster's cores train runs side by side.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from hypermeta.config import TrainConfig
from hypermeta.errors import UsageError
from hypermeta.sweeps.sweep import SweepConfig, plan, status


@dataclass(frozen=True)
class ClusterConfig:
    """Where and how the cells of a sweep run on a Ray cluster."""

    ray: str | None = None
    """Run the sweep's cells as Ray tasks on a cluster: ADDRESS (host:port of the head node,
    or ray://host:10001), 'auto' (the cluster this node belongs to) or 'local' (a throwaway
    cluster on this machine). Needs the ray extra and --out on storage every node can reach."""
    runs_per_cell: int = 0
    """(lr, seed) runs trained together in one cell (0 = auto: all runs of a method on a GPU
    cell, one run per CPU cell)."""
    cell_cpus: float = 1.0
    """CPUs a cell asks Ray for."""
    cell_gpus: float = 0.0
    """GPUs a cell asks Ray for (e.g. 1, or 0.5 to share a GPU between two cells)."""
    max_retries: int = 3
    """Times Ray retries a cell whose worker or node was lost, or that met a transient I/O error
    (-1: without limit); it resumes from its last checkpoint. Other errors are not retried."""


@dataclass(frozen=True)
class Cell:
    """One unit of work: the runs of `cfg` trained into the run directory `path`."""

    cfg: TrainConfig
    path: Path
    """Its run directory."""
    name: str
    """ENV/METHOD[/lr-LR_seed-S]: how the progress view and the status file name it."""

    @property
    def frames(self) -> int:
        """Frames this cell trains, all its runs together."""
        return self.cfg.num_updates * self.cfg.ppo.frames_per_update * len(self.cfg.runs)


def cell_dir_name(seeds: tuple[int, ...], lrs: tuple[float, ...]) -> str:
    """lr-0.0003_seed-73, or lr-0.001+0.0003_seed-73+20 for a cell of several runs."""
    return f"lr-{'+'.join(repr(float(lr)) for lr in lrs)}_seed-{'+'.join(str(int(s)) for s in seeds)}"


def split_runs(seeds: tuple[int, ...], lrs: tuple[float, ...], runs_per_cell: int
               ) -> list[tuple[tuple[int, ...], tuple[float, ...]]]:
    """The (seeds, lrs) of each cell: a TrainConfig trains a seeds x lrs product, so a cell holds
    whole lrs (all seeds) when runs_per_cell allows, else groups of seeds of one lr."""
    if runs_per_cell <= 0 or runs_per_cell >= len(seeds) * len(lrs):
        return [(seeds, lrs)]
    if runs_per_cell >= len(seeds):
        step = runs_per_cell // len(seeds)
        return [(seeds, lrs[i:i + step]) for i in range(0, len(lrs), step)]
    return [(seeds[i:i + runs_per_cell], (lr,)) for lr in lrs for i in range(0, len(seeds), runs_per_cell)]


def auto_runs_per_cell(cluster: ClusterConfig) -> int:
    """ClusterConfig.runs_per_cell with 0 resolved: all runs (0) on a GPU cell, 1 on a CPU cell."""
    if cluster.runs_per_cell < 0:
        raise UsageError(f"--runs-per-cell must be >= 0 (0 = auto), got {cluster.runs_per_cell}")
    if cluster.runs_per_cell:
        return cluster.runs_per_cell
    return 0 if cluster.cell_gpus > 0 else 1


def _method_cells(cfg: TrainConfig, method_dir: Path, out: Path, runs_per_cell: int) -> list[Cell]:
    """The cells of one method's run directory; an existing layout wins over runs_per_cell."""
    name = method_dir.relative_to(out).as_posix()
    groups = split_runs(tuple(cfg.seeds), tuple(cfg.lr), runs_per_cell)
    if (method_dir / "config.json").exists() or len(groups) == 1:  # a local sweep's or a whole-method cell
        return [Cell(cfg, method_dir, name)]
    cells = [Cell(dataclasses.replace(cfg, seeds=seeds, lr=lrs), method_dir / cell_dir_name(seeds, lrs),
                  f"{name}/{cell_dir_name(seeds, lrs)}") for seeds, lrs in groups]
    if method_dir.is_dir():  # more lrs or seeds than before are fine, cells of another size are not
        planned = {c.path.name for c in cells}
        other = sorted(p.name for p in method_dir.iterdir() if p.is_dir() and p.name not in planned)
        if other:
            raise UsageError(
                f"{method_dir} holds cells {', '.join(other)}, which this sweep does not plan "
                f"({', '.join(sorted(planned))}); use the --runs-per-cell that wrote them, or choose another --out")
    return cells


def plan_cells(sweep: SweepConfig, out: Path, cluster: ClusterConfig) -> list[Cell]:
    """Every cell of the sweep, each checked (config, conflicting directory) before anything starts."""
    from hypermeta.validate import validate

    if cluster.cell_cpus < 0 or cluster.cell_gpus < 0:
        raise UsageError(f"--cell-cpus and --cell-gpus must be >= 0, got {cluster.cell_cpus} and {cluster.cell_gpus}")
    if cluster.max_retries < -1:
        raise UsageError(f"--max-retries must be >= 0, or -1 to retry without limit; got {cluster.max_retries}")
    per_cell = auto_runs_per_cell(cluster)
    by_method = []
    for cfg, method_dir in plan(sweep, out):
        validate(cfg)
        by_method.append(_method_cells(cfg, method_dir, out, per_cell))
    # Round robin over the methods: the first cells to start (Ray starts them roughly in this
    # order) cover every method, so a report early on compares them all, and cells that start
    # together compile different programs (with a shared JAX compilation cache the later cells
    # of a method load its program).
    cells = [group[i] for i in range(max(map(len, by_method))) for group in by_method if i < len(group)]
    for cell in cells:
        cell_status(cell)  # refuses a directory holding another run
    return cells


def cell_status(cell: Cell) -> str:
    """'new', 'resume' or 'finished' (see hypermeta.sweeps.sweep.status), as the driver sees it: physics
    "auto" is resolved by each cell where it trains (and recorded there), not against the
    driver's backend, so a driver of any kind continues and reports a sweep whose cells recorded
    "c" or "mjx"."""
    return status(cell.cfg, cell.path, trains_here=False)
