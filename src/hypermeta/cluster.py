"""Sweeps on a Ray cluster: `hypermeta sweep|reproduce ... --ray ADDRESS|auto|local`.

The driver plans every cell (hypermeta.cells), checks them all before anything starts,
checks that every node that could run a cell sees the sweep directory, then submits each
unfinished cell as one Ray task with its resource request and follows them to the end.
Scheduling, placement and retries are Ray's: a cell whose worker or node is lost (SIGKILL,
preemption) is retried up to --max-retries times and resumes from its last checkpoint; a
cell that fails by itself (a bad configuration, an error in training) is not retried, is
reported with its error, and the other cells go on. The driver lost: the same command again
skips the finished cells and resumes the others. Run directories are the local sweep's
(hypermeta.cells), so `hypermeta report OUT` reads them unchanged.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

from hypermeta.cell_task import CellInterrupted, probe_storage, run_cell, storage_marker, write_storage_marker
from hypermeta.cells import Cell, ClusterConfig, cell_status, plan_cells
from hypermeta.errors import UsageError
from hypermeta.sweep import SweepConfig
from hypermeta.sweep_progress import STATUS_FILE, SweepProgress

INSTALL = 'pip install -e ".[ray]"'


class CellsFailed(UsageError):
    """Some cells failed by themselves; the others finished."""


def require_ray() -> None:
    """A one-line error naming the install command where Ray is not installed (nothing imported)."""
    import importlib.util

    try:
        found = importlib.util.find_spec("ray") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise UsageError(f"--ray needs Ray, which is not installed: {INSTALL}")


def _token_auth() -> None:
    """`ray start` turns token authentication on where a token exists (Ray >= 2.59), but a driver
    connecting to it sends none unless RAY_AUTH_MODE says so: the same rule here. Ray reads the
    mode when it is imported, hence before the import."""
    if "RAY_AUTH_MODE" not in os.environ and "ray" not in sys.modules and (
            os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")
            or (Path.home() / ".ray" / "auth_token").is_file()):
        os.environ["RAY_AUTH_MODE"] = "token"


def driver_on_cpu() -> None:
    """Keep this process, a sweep's driver, off the accelerators: it plans and checks cells and
    trains nothing, but a JAX backend started on a GPU node would reserve most of a GPU that Ray
    gives to a cell. Importing hypermeta starts no backend; this pins JAX to the CPU for the
    checks that build an environment (a MuJoCo configuration's), before any backend starts.
    The workers are other processes: the cells resolve physics "auto" on their own backend."""
    import jax

    jax.config.update("jax_platforms", "cpu")  # not os.environ: a --ray local cluster inherits that


def check_address(address: str) -> None:
    """A host:port that nothing answers on fails here, in seconds, rather than after Ray's long wait."""
    if address in ("auto", "local") or address.startswith("ray://"):
        return
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise UsageError(f"--ray {address!r}: give HOST:PORT of the head node, ray://HOST:PORT, 'auto' or 'local'")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as e:
        raise UsageError(f"--ray {address}: no Ray cluster answers there ({e.strerror or e}); start one with "
                         "'ray start --head', or use --ray local for a cluster on this machine") from None


@contextlib.contextmanager
def connect(address: str) -> Iterator[object]:
    """The ray module, connected to `address` for the duration (an existing connection is used as is)."""
    require_ray()
    _token_auth()
    import ray

    if ray.is_initialized():  # a caller's own connection (a notebook, a test): leave it open
        yield ray
        return
    check_address(address)
    # Workers' output is not forwarded: it would break the live view (each node keeps it in
    # /tmp/ray/session_latest/logs); a cell's error comes back with its task.
    options = {"include_dashboard": False} if address == "local" else {}
    try:
        with warnings.catch_warnings():
            # Ray starts its processes with fork + exec (a new program), not a bare fork of JAX's threads.
            warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)
            ray.init(address=address, log_to_driver=False, logging_level="warning", **options)
    except ConnectionError as e:
        raise UsageError(f"--ray {address}: {str(e).splitlines()[0]}") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def _can_run_cells(node: dict, cluster: ClusterConfig) -> bool:
    have = node.get("Resources", {})
    return node.get("Alive") and have.get("CPU", 0) >= cluster.cell_cpus and have.get("GPU", 0) >= cluster.cell_gpus


def check_storage(ray, out: Path, cluster: ClusterConfig) -> str:
    """Write the storage marker and have every node that could run a cell read it and write
    next to it; the marker's token (cells check it again), or a one-line error."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    token = uuid.uuid4().hex
    try:
        write_storage_marker(out, token)
    except OSError as e:
        raise UsageError(f"--out {out}: cannot write there ({e.strerror or e})") from None
    nodes = [n for n in ray.nodes() if _can_run_cells(n, cluster)]
    if not nodes:
        fit = f"{cluster.cell_cpus:g} CPU" + (f" and {cluster.cell_gpus:g} GPU" if cluster.cell_gpus else "")
        print(f"no node of the cluster has {fit} for a cell yet; the cells wait for one (an autoscaler may add it)")
    probe = ray.remote(num_cpus=0, max_retries=0)(probe_storage)
    refs = [probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(str(out), token)
            for n in nodes]
    problems = [p for p in ray.get(refs, timeout=300) if p]
    if problems:
        storage_marker(out).unlink(missing_ok=True)
        raise UsageError(f"--out {out} is not on storage that every node shares: {'; '.join(problems)}. Put --out on a "
                         "filesystem every node mounts at the same path (docs/cluster.md); nothing was started")
    return token


def _task(ray, cluster: ClusterConfig):
    """run_cell as a Ray task with the cell's resources and Ray's retries."""
    env = {}
    if cluster.cell_gpus == 0:
        env["JAX_PLATFORMS"] = "cpu"  # a CPU cell on a GPU node must not take the GPU Ray gives to others
    elif cluster.cell_gpus < 1:  # cells sharing a GPU: JAX must not take 75% of it each
        env["XLA_PYTHON_CLIENT_MEM_FRACTION"] = f"{0.9 * cluster.cell_gpus:.2f}"
    return ray.remote(
        num_cpus=cluster.cell_cpus, num_gpus=cluster.cell_gpus,
        # Lost workers and nodes are retried by Ray (max_retries); of the cell's own errors
        # only an interruption (a checkpoint saved on SIGTERM) and I/O errors (shared storage)
        # are, the others (bad configuration, errors in training) would fail again.
        max_retries=cluster.max_retries, retry_exceptions=[CellInterrupted, OSError],
        # A GPU worker exits after its cell: JAX keeps the GPU memory it reserved until then.
        max_calls=1 if cluster.cell_gpus else 0,
        runtime_env={"env_vars": env})(run_cell)


def failure_line(ray, error: Exception) -> str:
    """One line for a failed cell: the cell's own exception, or what Ray lost (a worker or node,
    more often than --max-retries)."""
    cause = (getattr(error, "cause", None) if isinstance(error, ray.exceptions.RayTaskError) else None) or error
    text = next((line for line in str(cause).splitlines() if line.strip()), "")
    return f"{type(cause).__name__}: {text.strip()}"[:500]


def _follow(ray, pending: dict, progress: SweepProgress, refresh_s: float) -> None:
    """Wait for every submitted cell, recording each as done or failed, refreshing the view."""
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=refresh_s)
        for ref in ready:
            cell = pending.pop(ref)
            try:
                progress.done(cell, ray.get(ref))
            except ray.exceptions.RayError as e:
                progress.failed(cell, failure_line(ray, e))
        progress.refresh()


def run_cells(cells: list[Cell], out: Path, cluster: ClusterConfig, show_progress: bool = True,
              train_fn: Callable | None = None, refresh_s: float = 1.0) -> None:
    """Train every unfinished cell on the cluster at `cluster.ray`; raises CellsFailed naming the
    cells that failed by themselves once all others are done."""
    out = out.resolve()
    states = {c.name: cell_status(c) for c in cells}
    if all(state == "finished" for state in states.values()):
        print(f"all {len(cells)} cells in {out} finished before: nothing to train")
        return
    with connect(cluster.ray) as ray:
        token = check_storage(ray, out, cluster)
        session = uuid.uuid4().hex[:12]
        task = _task(ray, cluster)
        with SweepProgress(cells, out, session, cluster.ray, show_progress) as progress:
            todo = [c for c in cells if states[c.name] != "finished"]
            for c in cells:
                if states[c.name] == "finished":
                    progress.skipped(c)
            resumed = sum(states[c.name] == "resume" for c in todo)
            progress.say(f"{len(cells)} cells in {out}: {len(cells) - len(todo)} finished before (skipped), "
                         f"{resumed} to resume, {len(todo) - resumed} new; status in {out / STATUS_FILE}")
            pending = {task.options(name=c.name).remote(c.cfg.to_dict(), str(c.path.resolve()), c.name, str(out), token, session,
                                                        train_fn): c for c in todo}
            try:
                _follow(ray, pending, progress, refresh_s)
            except KeyboardInterrupt:
                for ref in pending:
                    ray.cancel(ref)
                raise KeyboardInterrupt("stopped; run the same command again to continue (finished cells are "
                                        "skipped, the others resume from their last checkpoint)") from None
    failed = [s for s in progress.states.values() if s.state == "failed"]
    if failed:
        raise CellsFailed(f"{len(failed)} of {len(cells)} cells failed ({', '.join(s.cell.name for s in failed)}; errors "
                          f"above and in {out / STATUS_FILE}), the others finished; run the same command again to retry them")


def run_cluster_sweeps(sweeps: list[SweepConfig], out: Path, cluster: ClusterConfig, show_progress: bool = True,
                       train_fn: Callable | None = None, refresh_s: float = 1.0) -> list[Cell]:
    """The cells of every sweep (one environment each) into `out`, all submitted at once; returns them."""
    require_ray()  # a missing extra fails before anything is planned or written
    out = out.resolve()  # workers do not share the driver's working directory
    cells = [c for sweep in sweeps for c in plan_cells(sweep, out, cluster)]
    run_cells(cells, out, cluster, show_progress, train_fn, refresh_s)
    return cells
