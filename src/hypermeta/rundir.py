"""A run directory on disk: what is in it and how it is written safely.

    config.json     the TrainConfig (written once, atomically)
    metrics.csv     one row per evaluation per run (appended; repaired on resume)
    diverged.json   only if a run diverged: {"seed=S,lr=LR": {"update", "non_finite"}}
    checkpoints/    orbax checkpoints of all runs' states (atomic by orbax)
    curve.png       learning curves
    summary.json    written last: its presence means the run finished

Every file except metrics.csv is written to a temporary name and renamed into
place. metrics.csv is appended row by row for speed; on resume, rows past the
restored checkpoint (and a torn last line after a crash) are dropped and the file
is rewritten atomically, so no evaluation is lost or counted twice. diverged.json
is rewritten whenever a run is first seen non-finite; on resume, records past the
restored checkpoint are dropped with the rows they describe.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import orbax.checkpoint as ocp

from hypermeta.config import TrainConfig
from hypermeta.errors import UsageError


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def run_dir_name(method: str, state_embed: int, default_state_embed: int) -> str:
    """A sweep's directory of one method: METHOD, or METHOD_state-embed-N for a policy state
    embedding other than the method's default."""
    return method if state_embed == default_state_embed else f"{method}_state-embed-{state_embed}"


def run_key(seed: int, lr: float) -> str:
    """How summary.json and diverged.json name a run: 'seed=73,lr=0.0003' (lr as metrics.csv writes it)."""
    return f"seed={int(seed)},lr={float(lr)}"


class RunDir:
    """The files of one `hypermeta train` invocation."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.config_path = self.path / "config.json"
        self.metrics_path = self.path / "metrics.csv"
        self.summary_path = self.path / "summary.json"
        self.diverged_path = self.path / "diverged.json"
        self.curve_path = self.path / "curve.png"
        self._checkpoints: ocp.CheckpointManager | None = None

    # -- creation and validation -------------------------------------------------
    @staticmethod
    def create(path: Path, cfg: TrainConfig) -> RunDir:
        """A new run directory; refuses to touch an existing one."""
        path = Path(path)
        if path.exists():
            raise UsageError(f"output directory {str(path)!r} already exists; pass --resume {path} to continue it, or choose a new --out")
        path.mkdir(parents=True)
        run = RunDir(path)
        atomic_write_json(run.config_path, cfg.to_dict())
        return run

    @staticmethod
    def open(path: Path, option: str = "") -> tuple[RunDir, TrainConfig]:
        """An existing run directory and its stored config, or a UsageError saying what is
        wrong; `option` ("--resume ") prefixes the path in messages."""
        path = Path(path)
        where = f"{option}{str(path)!r}"
        if not path.is_dir():
            raise UsageError(f"{where}: no such run directory")
        run = RunDir(path)
        try:
            cfg = TrainConfig.from_dict(json.loads(run.config_path.read_text()))
        except FileNotFoundError:
            raise UsageError(f"{where}: not a run directory (no config.json); pass a directory written by "
                             "hypermeta train or sweep") from None
        except (ValueError, TypeError, KeyError) as e:
            raise UsageError(f"{where}: config.json is corrupt or from another version ({e})") from None
        return run, cfg

    @staticmethod
    def open_for_resume(path: Path) -> tuple[RunDir, TrainConfig]:
        """`open` for `--resume`."""
        return RunDir.open(path, "--resume ")

    @property
    def finished(self) -> bool:
        return self.summary_path.exists()

    # -- metrics -------------------------------------------------------------------
    def append_metrics(self, rows: list[dict[str, Any]]) -> None:
        """Append rows; columns the file does not have yet (a run directory written by an
        older version, resumed) are added by rewriting it atomically, older rows empty there."""
        fields = list(rows[0])
        header = self._metrics_header()
        if header is not None and header != fields:
            if set(fields) <= set(header):
                fields = header
            else:
                fields = header + [c for c in fields if c not in header]
                old = self.read_metrics()
                self._rewrite_metrics(fields, old)
        new = not self.metrics_path.exists()
        with open(self.metrics_path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields, restval="")
            if new:
                writer.writeheader()
            writer.writerows(rows)

    def _metrics_header(self) -> list[str] | None:
        if not self.metrics_path.exists() or self.metrics_path.stat().st_size == 0:
            return None
        with open(self.metrics_path, newline="") as f:
            return next(csv.reader(f), None)

    def _rewrite_metrics(self, fields: list[str], rows: list[dict[str, Any]]) -> None:
        import io

        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=fields, restval="")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_bytes(self.metrics_path, buf.getvalue().encode())

    def read_metrics(self) -> list[dict[str, str]]:
        if not self.metrics_path.exists():
            return []
        with open(self.metrics_path, newline="") as f:
            return list(csv.DictReader(f))

    def truncate_metrics(self, max_update: int) -> None:
        """Keep only complete rows with update <= max_update (resume after a crash)."""
        if not self.metrics_path.exists():
            return
        with open(self.metrics_path, newline="") as f:
            reader = csv.DictReader(f)
            fields = reader.fieldnames or []
            rows = [r for r in reader if None not in r.values() and r.get("update", "").isdigit() and int(r["update"]) <= max_update]
        if not rows:
            self.metrics_path.unlink()
            return
        self._rewrite_metrics(fields, rows)

    # -- divergence ------------------------------------------------------------------
    def read_diverged(self) -> dict[str, dict[str, Any]]:
        """{run_key: {"update": first update seen non-finite, "non_finite": [names]}} ({} if none)."""
        if not self.diverged_path.exists():
            return {}
        return json.loads(self.diverged_path.read_text())

    def write_diverged(self, records: dict[str, dict[str, Any]]) -> None:
        atomic_write_json(self.diverged_path, records)

    def truncate_diverged(self, max_update: int) -> None:
        """Keep only records with update <= max_update (resume: later ones are found again)."""
        records = self.read_diverged()
        kept = {k: r for k, r in records.items() if int(r["update"]) <= max_update}
        if kept == records:
            return
        if kept:
            self.write_diverged(kept)
        else:
            self.diverged_path.unlink()

    # -- checkpoints -------------------------------------------------------------------
    @property
    def checkpoints(self) -> ocp.CheckpointManager:
        if self._checkpoints is None:
            options = ocp.CheckpointManagerOptions(max_to_keep=2, create=True, enable_async_checkpointing=False)
            self._checkpoints = ocp.CheckpointManager((self.path / "checkpoints").absolute(), options=options)
        return self._checkpoints

    def save_checkpoint(self, update: int, state: Any) -> None:
        self.checkpoints.save(update, args=ocp.args.StandardSave(state), force=True)
        self.checkpoints.wait_until_finished()

    def restore_checkpoint(self, like: Any) -> tuple[int, Any] | None:
        """The latest checkpoint restored into the structure of `like`, or None if there is none."""
        step = self.checkpoints.latest_step()
        if step is None:
            return None
        try:
            state = self.checkpoints.restore(step, args=ocp.args.StandardRestore(like))
        except Exception as e:  # orbax raises many types for unreadable or mismatched data
            raise UsageError(
                f"--resume {str(self.path)!r}: checkpoint {step} cannot be restored into this configuration "
                f"(a run directory written by an older hypermeta whose state layout changed cannot be resumed: "
                f"start a new --out) ({type(e).__name__}: {str(e)[:200]})"
            ) from None
        return step, state

    def close(self) -> None:
        if self._checkpoints is not None:
            self._checkpoints.close()
