"""Logging sinks: the scalars of metrics.csv also sent to TensorBoard and Weights & Biases.

metrics.csv is always written (it is what `hypermeta report` reads); `--log tensorboard`
and/or `--log wandb` send every row's numeric columns there too, with the frames per run
as the step. Each (seed, lr) run of a run directory is its own log run, named by its
`run_key` and carrying the configuration:

    RUN_DIR/tensorboard/seed=73,lr=0.0003/events.out.tfevents...   (tensorboardX)
    RUN_DIR/wandb/...-<id>/                                         (W&B, online or offline)
    RUN_DIR/wandb_ids.json                                          {run_key: W&B run id}

A resumed run continues its own log: TensorBoard writes to the same folder and purges
the steps after the restored checkpoint (rows that metrics.csv dropped too); W&B resumes
the run id stored in wandb_ids.json. Both packages are optional extras, imported only
when asked for.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any, Protocol

from hypermeta.config import TrainConfig
from hypermeta.errors import UsageError
from hypermeta.rundir import RunDir, atomic_write_json, run_key

SINKS = ("tensorboard", "wandb")
#: Columns that name a run or a step rather than measure something.
KEY_COLUMNS = ("seed", "lr")


class Sink(Protocol):
    """Where metrics rows go besides metrics.csv."""

    def write(self, rows: list[dict[str, Any]]) -> None:
        """One metrics.csv row per run (`seed`, `lr`, `frames`, scalars)."""

    def close(self) -> None:
        """Flush and release."""


def scalars(row: dict[str, Any]) -> dict[str, float]:
    """The numeric columns of a metrics row, without those that name the run."""
    return {k: float(v) for k, v in row.items()
            if k not in KEY_COLUMNS and isinstance(v, int | float) and not isinstance(v, bool)}


def _missing(name: str, extra: str, err: ImportError) -> UsageError:
    return UsageError(f"--log {name} needs the {extra} extra ({err.name} is missing): pip install 'hypermeta[{extra}]'")


class TensorBoardSink:
    """One tensorboardX event folder per run: RUN_DIR/tensorboard/<run_key>/."""

    def __init__(self, run: RunDir, cfg: TrainConfig, start_frames: int):
        try:
            from tensorboardX import SummaryWriter
        except ImportError as err:
            raise _missing("tensorboard", "tensorboard", err) from None
        self.writers = {}
        for seed, lr in cfg.runs:
            key = run_key(seed, lr)
            folder = run.path / "tensorboard" / key
            fresh = not folder.exists()
            # Resumed: events past the checkpoint (logged before a crash) are hidden by TensorBoard.
            writer = SummaryWriter(logdir=str(folder), purge_step=None if fresh else start_frames + 1)
            if fresh:
                config = json.dumps({**cfg.to_dict(), "seed": seed, "lr": lr}, indent=2)
                writer.add_text("config", f"```\n{config}\n```", 0)
            self.writers[key] = writer

    def write(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            writer = self.writers[run_key(row["seed"], row["lr"])]
            step = int(row["frames"])
            for name, value in scalars(row).items():
                writer.add_scalar(name, value, global_step=step)
            writer.flush()

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()


class WandbSink:
    """One W&B run per (seed, lr), grouped by the run directory; ids kept in wandb_ids.json."""

    def __init__(self, run: RunDir, cfg: TrainConfig):
        try:
            import wandb
        except ImportError as err:
            raise _missing("wandb", "wandb", err) from None
        ids_path = run.path / "wandb_ids.json"
        ids = json.loads(ids_path.read_text()) if ids_path.exists() else {}
        self.runs = {}
        for seed, lr in cfg.runs:
            key = run_key(seed, lr)
            ids.setdefault(key, uuid.uuid4().hex[:12])
            atomic_write_json(ids_path, ids)  # before init: a crash inside it still resumes the same id
            try:
                logged = wandb.init(
                    project=os.environ.get("WANDB_PROJECT", "hypermeta"), group=run.path.name,
                    name=f"{run.path.name} {key}", id=ids[key], resume="allow", dir=str(run.path),
                    config={**cfg.to_dict(), "seed": seed, "lr": lr, "run_dir": str(Path(run.path).resolve())},
                    reinit="create_new")
            except Exception as err:  # wandb raises its own types for a missing login, network, ...
                self.close()
                raise UsageError(f"--log wandb: W&B did not start ({type(err).__name__}: {str(err)[:200]}); "
                                 "log in with `wandb login` or set WANDB_MODE=offline") from None
            logged.define_metric("*", step_metric="frames")
            self.runs[key] = logged

    def write(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            self.runs[run_key(row["seed"], row["lr"])].log(scalars(row))

    def close(self) -> None:
        for logged in self.runs.values():
            logged.finish()
        self.runs = {}


class Sinks:
    """Every sink of `cfg.log` as one: `write(rows)`, `close()`."""

    def __init__(self, run: RunDir, cfg: TrainConfig, start_frames: int = 0):
        unknown = [name for name in cfg.log if name not in SINKS]
        if unknown:
            raise UsageError(f"--log {' '.join(unknown)}: unknown sink; choose from {', '.join(SINKS)}")
        self.sinks: list[Sink] = []
        try:
            for name in dict.fromkeys(cfg.log):
                self.sinks.append(TensorBoardSink(run, cfg, start_frames) if name == "tensorboard"
                                  else WandbSink(run, cfg))
        except BaseException:
            self.close()
            raise

    def write(self, rows: list[dict[str, Any]]) -> None:
        for sink in self.sinks:
            sink.write(rows)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()
        self.sinks = []
