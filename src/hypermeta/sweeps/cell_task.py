"""What a Ray worker runs: one cell of a sweep, and the probe of the sweep's storage.

Nothing here imports Ray: the driver (hypermeta.sweeps.cluster) wraps these functions into Ray
tasks. A cell trains its run directory as `hypermeta train` would, resuming whatever an
earlier attempt left (Ray retries a cell whose worker died: it continues from the last
checkpoint, and metrics.csv is cut back to that checkpoint, so nothing is counted twice).
`train` sets up the persistent compilation cache on the worker (`hypermeta.compile_cache`:
HYPERMETA_COMPILE_CACHE, which the driver's --compile-cache exports to local workers, else the
worker's ~/.cache/hypermeta/jax), so a worker's later cells of the same configuration and a
retried cell load the compiled chunk instead of compiling it again.
Every attempt is recorded in OUT/.cluster/cells/NAME.json (node, process, the update it
started from), which the driver's progress view and status file read.

Attempts are fenced: each takes a fresh token, written atomically to OUT/.cluster/cells/NAME.attempt
when it starts, and checks before each chunk's writes (metrics rows, diverged.json, checkpoints,
the summary) that the file still holds its own token (one small read per chunk). An attempt
orphaned by a driver that died (its Ray task goes on where the cluster outlives the driver) thus
stops with AttemptSuperseded, writing nothing more, at its next chunk once the next driver's
attempt of the cell has started. The token lives beside the attempt record, not in the run
directory, which `train` must create itself for a new run.

What a cell raises decides whether Ray retries it (hypermeta.sweeps.cluster._task): CellInterrupted and
TransientIOError are retried; everything else, deterministic errors among them (a missing file,
permission denied, a full disk, a bad configuration) and AttemptSuperseded, fails the cell at once.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from hypermeta.config import TrainConfig
from hypermeta.rundir import atomic_write_bytes, atomic_write_json

CLUSTER_DIR = ".cluster"
"""The driver's and the cells' bookkeeping under the sweep directory."""


class CellInterrupted(RuntimeError):
    """The cell was asked to stop (SIGTERM on preemption) and saved a checkpoint: Ray retries it."""


class StorageUnreachable(RuntimeError):
    """The worker does not see the driver's sweep directory: not retried on this node; the driver
    resubmits the cell away from `node_id` (the Ray node that failed)."""

    def __init__(self, message: str, node_id: str = ""):
        super().__init__(message)
        self.node_id = node_id

    def __reduce__(self):  # keeps node_id across the pickling from worker to driver
        return type(self), (str(self), self.node_id)


class AttemptSuperseded(RuntimeError):
    """A newer attempt of the cell took it over (this one was orphaned by a driver that died):
    this attempt stops before writing anything more. Not retried: the newer attempt goes on."""


class TransientIOError(OSError):
    """An I/O error that may pass (a storage server timing out or restarting): Ray retries the cell."""


TRANSIENT_ERRNOS = frozenset(getattr(errno, name) for name in (
    "EIO", "ESTALE", "ETIMEDOUT", "EAGAIN", "EINTR", "EBUSY", "ENOLCK", "ECONNRESET", "ECONNABORTED",
    "ECONNREFUSED", "ENETDOWN", "ENETUNREACH", "ENETRESET", "EHOSTDOWN", "EHOSTUNREACH", "EREMOTEIO")
    if hasattr(errno, name))
"""Errors of network storage and overloaded servers. Others (ENOENT, EACCES, EPERM, ENOSPC, EDQUOT,
EROFS, ...) would fail the same way again: the cell fails at once, with its line."""


def _node_id() -> str:
    """The Ray node this worker runs on ('' outside Ray): the worker has Ray imported already."""
    ray = sys.modules.get("ray")
    try:
        return ray.get_runtime_context().get_node_id() if ray is not None else ""
    except Exception:  # not connected (a test calling run_cell directly)
        return ""


def storage_marker(out: Path) -> Path:
    return out / CLUSTER_DIR / "storage-check"


def write_storage_marker(out: Path, token: str) -> None:
    """The file by which workers recognise the driver's sweep directory."""
    atomic_write_bytes(storage_marker(out), token.encode())


def probe_storage(out: str, token: str) -> str:
    """'' if this node sees the driver's sweep directory `out` and can write there, else why not."""
    host = socket.gethostname()
    try:
        found = storage_marker(Path(out)).read_text()
    except OSError:
        found = None
    if found != token:
        return f"{host} does not see the driver's {out} (no matching {CLUSTER_DIR}/storage-check there)"
    probe = Path(out) / CLUSTER_DIR / f".probe-{host}-{os.getpid()}"
    try:
        probe.write_text(token)
        probe.unlink()
    except OSError as e:
        return f"{host} cannot write to {out} ({e.strerror or e})"
    return ""


def record_path(out: Path, name: str) -> Path:
    """OUT/.cluster/cells/ENV__METHOD[__lr-..._seed-...].json: the attempts of one cell."""
    return out / CLUSTER_DIR / "cells" / (name.replace("/", "__") + ".json")


def read_record(out: Path, name: str) -> dict:
    try:
        return json.loads(record_path(out, name).read_text())
    except (OSError, ValueError):
        return {"attempts": []}


def _record_attempt(out: Path, name: str, session: str, start_update: int) -> None:
    # Only one attempt of a cell runs at a time (Ray starts a retry after the last one died),
    # so this read-modify-write has no competitor.
    record = read_record(out, name)
    record["attempts"].append({"session": session, "node": socket.gethostname(), "node_id": _node_id(),
                               "pid": os.getpid(), "start_update": start_update, "time": time.time()})
    atomic_write_json(record_path(out, name), record)


def attempt_path(out: Path, name: str) -> Path:
    """OUT/.cluster/cells/ENV__METHOD[...].attempt: the token of the cell's current attempt."""
    return record_path(out, name).with_suffix(".attempt")


def claim_attempt(out: Path, name: str) -> Callable[[], None]:
    """Make this the cell's current attempt (a fresh token, written atomically); returns the fence
    that `train` calls before each write: it raises AttemptSuperseded once another attempt claimed
    the cell after this one."""
    token = uuid.uuid4().hex
    path = attempt_path(out, name)
    atomic_write_bytes(path, token.encode())

    def fence() -> None:
        try:
            current = path.read_text()
        except FileNotFoundError:  # removed with the sweep's bookkeeping: no longer this attempt's
            current = ""
        if current != token:
            raise AttemptSuperseded(f"{name}: a newer attempt of this cell started; this one stopped "
                                    "without writing more")

    return fence


def _latest_checkpoint(path: Path) -> int:
    steps = [int(p.name) for p in (path / "checkpoints").glob("*") if p.name.isdigit()]
    return max(steps, default=0)


def run_cell(cfg: dict, path: str, name: str, out: str, token: str, session: str,
             train_fn: Callable | None = None) -> dict:
    """Train one cell into `path` (new, or resumed from an earlier attempt's checkpoint);
    returns where it ran and from which update it started."""
    unreachable = probe_storage(out, token)
    if unreachable:
        raise StorageUnreachable(f"{unreachable}; put --out on storage every node mounts at the same path", _node_id())
    try:
        return _train_cell(cfg, path, name, out, session, train_fn)
    except OSError as e:
        if e.errno in TRANSIENT_ERRNOS and not isinstance(e, TransientIOError):
            raise TransientIOError(e.errno, e.strerror, e.filename) from e
        raise


def _train_cell(cfg: dict, path: str, name: str, out: str, session: str, train_fn: Callable | None) -> dict:
    from hypermeta.sweeps.sweep import clear_leftover, status
    from hypermeta.training.loop import Stopped, train

    config, run_dir = TrainConfig.from_dict(cfg), Path(path)
    # Physics "auto" is resolved here, on the cell's backend, not the driver's: a new run records
    # the engine it uses (train); a resumed one must have recorded the engine "auto" means here.
    state = status(config, run_dir)  # refuses a directory holding another run
    start = _latest_checkpoint(run_dir) if state == "resume" else 0
    if state != "finished":
        # On resume `config` is the stored one but for what `differences` ignores (speed knobs,
        # log sinks): those are this sweep's.
        clear_leftover(run_dir)
        fence = claim_attempt(Path(out), name)  # before the record: an orphan stops at its next chunk
        _record_attempt(Path(out), name, session, start)
        t0 = time.time()
        try:
            (train_fn or train)(config, run_dir, resume=state == "resume", show_progress=False, fence=fence)
        except Stopped as e:
            raise CellInterrupted(f"{name}: {e.where}") from None
    return {"node": socket.gethostname(), "state": state, "start_update": start,
            "seconds": time.time() - t0 if state != "finished" else 0.0}
