"""Logging sinks: the scalars of metrics.csv also sent to TensorBoard and Weights & Biases.

metrics.csv is always written (it is what `hypermeta report` reads); `--log tensorboard`
and/or `--log wandb` send every row's numeric columns there too, with the frames per run
as the step. Each (seed, lr) run of a run directory is its own log run, carrying the
configuration:

    RUN_DIR/tensorboard/seed=73,lr=0.0003/events.out.tfevents...   (tensorboardX)
    RUN_DIR/wandb/...-<id>/                                         (W&B, online or offline)
    RUN_DIR/wandb_ids.json                                          {run_key: W&B run id}
    RUN_DIR/logged_steps.json                                       {sink: {run_key: last step logged}}

A W&B run is grouped by environment and method (`log_group`: grid-world/rnn-hn, with
_state-embed-N as a sweep's directories), its job type is the lr and its name adds the
seed and lr (grid-world/rnn-hn seed=73,lr=0.0003), so the runs of a sweep split into cells
on a cluster, or of several environments in one project, neither mix nor share names.
TensorBoard names a run by its folder under --logdir, which for a sweep's OUT holds the
environment, method, lr and seed (OUT/ENV/METHOD[/lr-LR_seed-S]/tensorboard/seed=S,lr=LR).

A resumed run continues its own log and logs no step twice: it re-trains the updates after
its checkpoint (metrics.csv drops their rows and writes them again), and each sink skips the
steps at or below the last one it logged (logged_steps.json, written after each logged row
batch). TensorBoard writes to the same folder; W&B resumes the run id stored in
wandb_ids.json. Both packages are optional extras, imported only when asked for.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any, Protocol

from hypermeta.config import TrainConfig
from hypermeta.errors import UsageError
from hypermeta.rundir import RunDir, atomic_write_json, run_dir_name, run_key

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


def log_group(cfg: TrainConfig) -> str:
    """ENV/METHOD, or ENV/METHOD_state-embed-N for a policy state embedding other than the
    method's default: what a sweep names the run directory of these runs."""
    from hypermeta.families import method_defaults
    from hypermeta.methods.registry import get_method

    method = get_method(cfg.method)
    default = method_defaults(cfg.env, method.name).model.policy_state_embed
    size = cfg.model.policy_state_embed if method.reads_state else default
    return f"{cfg.env}/{run_dir_name(method.name, size, default)}"


class LoggedSteps:
    """The last step (frames) a sink logged for each run, kept in RUN_DIR/logged_steps.json: a
    resumed run trains again the updates after its checkpoint, whose rows the sink already sent."""

    def __init__(self, run: RunDir, sink: str):
        self.path, self.sink = run.path / "logged_steps.json", sink
        self.last: dict[str, int] = self._read().get(sink, {})

    def _read(self) -> dict[str, dict[str, int]]:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):  # none yet (a new run, or one logged before this file existed)
            return {}

    def new_rows(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The rows past the last step logged for their run."""
        return [r for r in rows if int(r["frames"]) > self.last.get(run_key(r["seed"], r["lr"]), -1)]

    def logged(self, rows: list[dict[str, Any]]) -> None:
        """Record `rows` as sent (after sending: a crash in between repeats at most these rows)."""
        if not rows:
            return
        for r in rows:
            key = run_key(r["seed"], r["lr"])
            self.last[key] = max(self.last.get(key, -1), int(r["frames"]))
        record = self._read()  # the other sink's entries are kept
        record[self.sink] = self.last
        atomic_write_json(self.path, record)


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
        self.steps = LoggedSteps(run, "tensorboard")
        for seed, lr in cfg.runs:
            key = run_key(seed, lr)
            folder = run.path / "tensorboard" / key
            fresh = not folder.exists()
            # Resumed, the steps already logged are skipped (self.steps); a folder written before
            # logged_steps.json existed has no record: TensorBoard hides its events past the checkpoint.
            purge = None if fresh or key in self.steps.last else start_frames + 1
            writer = SummaryWriter(logdir=str(folder), purge_step=purge)
            if fresh:
                config = json.dumps({**cfg.to_dict(), "seed": seed, "lr": lr}, indent=2)
                writer.add_text("config", f"```\n{config}\n```", 0)
            self.writers[key] = writer

    def write(self, rows: list[dict[str, Any]]) -> None:
        rows = self.steps.new_rows(rows)
        for row in rows:
            writer = self.writers[run_key(row["seed"], row["lr"])]
            step = int(row["frames"])
            for name, value in scalars(row).items():
                writer.add_scalar(name, value, global_step=step)
            writer.flush()
        self.steps.logged(rows)

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()


class WandbSink:
    """One W&B run per (seed, lr), grouped by environment and method (`log_group`), of job type
    its lr; ids kept in wandb_ids.json."""

    def __init__(self, run: RunDir, cfg: TrainConfig):
        try:
            import wandb
        except ImportError as err:
            raise _missing("wandb", "wandb", err) from None
        ids_path = run.path / "wandb_ids.json"
        ids = json.loads(ids_path.read_text()) if ids_path.exists() else {}
        self.runs = {}
        self.steps = LoggedSteps(run, "wandb")
        group = log_group(cfg)
        for seed, lr in cfg.runs:
            key = run_key(seed, lr)
            ids.setdefault(key, uuid.uuid4().hex[:12])
            atomic_write_json(ids_path, ids)  # before init: a crash inside it still resumes the same id
            try:
                # Not grouped by the run directory's name: a cell's (lr-0.001_seed-73) is every method's.
                logged = wandb.init(
                    project=os.environ.get("WANDB_PROJECT", "hypermeta"), group=group, job_type=f"lr={float(lr)}",
                    name=f"{group} {key}", id=ids[key], resume="allow", dir=str(run.path),
                    config={**cfg.to_dict(), "seed": seed, "lr": lr, "run_dir": str(Path(run.path).resolve())},
                    reinit="create_new")
            except Exception as err:  # wandb raises its own types for a missing login, network, ...
                self.close()
                raise UsageError(f"--log wandb: W&B did not start ({type(err).__name__}: {str(err)[:200]}); "
                                 "log in with `wandb login` or set WANDB_MODE=offline") from None
            logged.define_metric("*", step_metric="frames")
            self.runs[key] = logged

    def write(self, rows: list[dict[str, Any]]) -> None:
        rows = self.steps.new_rows(rows)
        for row in rows:
            self.runs[run_key(row["seed"], row["lr"])].log(scalars(row))
        self.steps.logged(rows)

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
