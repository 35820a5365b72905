"""Sweeps on a Ray cluster: `hypermeta sweep|reproduce ... --ray ADDRESS|auto|local`.

The driver plans every cell (hypermeta.sweeps.cells), checks them all before anything starts,
checks that every node that could run a cell sees the sweep directory, then submits each
unfinished cell as one Ray task with its resource request and follows them to the end.
Scheduling, placement and retries are Ray's: a cell whose worker or node is lost (SIGKILL,
preemption) is retried up to --max-retries times and resumes from its last checkpoint; a
cell that fails by itself (a bad configuration, an error in training) is not retried, is
reported with its error, and the other cells go on. The driver lost: the same command again
skips the finished cells and resumes the others; an attempt the lost driver left running stops
at its next chunk once the new driver's attempt of its cell starts (cell_task.claim_attempt). Run directories are the local sweep's
(hypermeta.sweeps.cells), so `hypermeta report OUT` reads them unchanged.

A sweep directory has one driver at a time: the driver holds a lease on it (DriverLease,
OUT/.cluster/driver-lease.json) that it renews every HEARTBEAT_S; another driver is refused while
the lease is live and takes it over once it is stale (its owner's process is gone, or no renewal
for STALE_AFTER_S).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

from hypermeta.errors import UsageError
from hypermeta.rundir import atomic_write_json
from hypermeta.sweeps.cell_task import (
    CLUSTER_DIR,
    CellInterrupted,
    StorageUnreachable,
    TransientIOError,
    probe_storage,
    run_cell,
    storage_marker,
    write_storage_marker,
)
from hypermeta.sweeps.cells import Cell, ClusterConfig, cell_status, plan_cells
from hypermeta.sweeps.progress import STATUS_FILE, SweepProgress
from hypermeta.sweeps.sweep import SweepConfig

INSTALL = 'pip install -e ".[ray]"'


class CellsFailed(UsageError):
    """Some cells failed by themselves; the others finished."""


LEASE_FILE = "driver-lease.json"
HEARTBEAT_S = 10.0
"""How often the driver renews its lease on the sweep directory."""
STALE_AFTER_S = 3 * HEARTBEAT_S
"""A lease not renewed for this long (3 missed heartbeats) is its dead owner's: a new driver takes it."""


def lease_path(out: Path) -> Path:
    return out / CLUSTER_DIR / LEASE_FILE


def read_lease(path: Path) -> dict | None:
    """The lease in `path`, None where there is none; {} (stale) where it cannot be read."""
    try:
        lease = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}
    return lease if isinstance(lease, dict) else {}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):  # another user's process, or no valid pid
        return pid > 0
    return True


def lease_is_stale(lease: dict, now: float | None = None) -> bool:
    """Whether the lease's owner is gone: not renewed for its stale_after seconds or, on this host,
    its process has exited (a driver killed here is succeeded at once, not after the timeout)."""
    now = time.time() if now is None else now
    if now - float(lease.get("renewed", 0)) > float(lease.get("stale_after", STALE_AFTER_S)):
        return True
    return lease.get("host") == socket.gethostname() and not _pid_alive(int(lease.get("pid", 0)))


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def refusal(out: Path, lease: dict) -> str:
    """The one line for a second driver while the owner's lease is live."""
    ago = max(0.0, time.time() - float(lease.get("renewed", 0)))
    return (f"--out {out} belongs to another driver: {lease.get('host', '?')} pid {lease.get('pid', '?')}, started "
            f"{_when(float(lease.get('started', 0)))} ({', '.join(lease.get('envs', [])) or 'a sweep'}), its lease renewed "
            f"{ago:.0f} s ago; wait for it to end or stop it, or use another --out (a driver that died loses "
            f"the directory {float(lease.get('stale_after', STALE_AFTER_S)):.0f} s after its last renewal)")


def _create_exclusive(path: Path, record: dict) -> None:
    """Write `record` to `path` whole, failing with FileExistsError where `path` exists: of two
    drivers creating the lease at once, exactly one gets it (a hard link is atomic, on NFS too)."""
    tmp = path.with_name(f".{path.name}.{record['session']}.tmp")
    atomic_write_json(tmp, record)
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError:  # a filesystem without hard links: an exclusive create, written at once
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(record, indent=2, sort_keys=True) + "\n")
    finally:
        tmp.unlink(missing_ok=True)


class DriverLease:
    """One driver's ownership of a sweep directory, renewed by a heartbeat thread while it runs.

    Only the owner writes the storage token, submits cells and writes the status file: a second
    driver would replace the token under the first one's queued cells (they would fail as not
    seeing the storage) and train the same run directories twice. The lease is refused while
    live whatever the second driver's environments (run several environments as one driver:
    `hypermeta reproduce`, or give each its own --out). `lost` is set where another driver took
    the lease over (this one was stalled past STALE_AFTER_S): this driver must stop."""

    def __init__(self, out: Path, envs: list[str]):
        self.out, self.path = out, lease_path(out)
        now = time.time()
        self.record = {"session": uuid.uuid4().hex, "host": socket.gethostname(), "pid": os.getpid(), "envs": envs,
                       "started": now, "renewed": now, "stale_after": STALE_AFTER_S}
        self.took_over: dict | None = None
        """The stale lease this driver succeeded, if any."""
        self.lost: dict | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> DriverLease:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def acquire(self) -> None:
        """Take the lease, or raise UsageError naming its live owner."""
        try:
            for _ in range(5):
                lease = read_lease(self.path)
                if lease is None:
                    try:
                        _create_exclusive(self.path, self.record)
                    except FileExistsError:  # another driver created it first: look at it
                        continue
                    break
                if not lease_is_stale(lease):
                    raise UsageError(refusal(self.out, lease))
                # Move the stale lease aside: of two successors only one rename succeeds.
                aside = self.path.with_name(f".{LEASE_FILE}.stale-{self.record['session']}")
                try:
                    os.rename(self.path, aside)
                except FileNotFoundError:
                    continue
                moved = read_lease(aside)
                if moved and moved.get("session") != lease.get("session"):  # a successor's fresh lease
                    os.replace(aside, self.path)
                    continue
                aside.unlink(missing_ok=True)
                self.took_over = lease
            else:
                raise UsageError(f"--out {self.out}: other drivers are starting on it at the same time; run one")
        except OSError as e:
            raise UsageError(f"--out {self.out}: cannot write there ({e.strerror or e})") from None
        self._thread = threading.Thread(target=self._beat, name="hypermeta-lease", daemon=True)
        self._thread.start()

    def renew(self) -> bool:
        """Write a new renewal time; False (and `lost` set) where another driver holds the lease now."""
        lease = read_lease(self.path)
        if not lease or lease.get("session") != self.record["session"]:
            self.lost = lease or {}
            return False
        self.record["renewed"] = time.time()
        atomic_write_json(self.path, self.record)
        return True

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                if not self.renew():
                    return
            except OSError:  # the storage hiccuped: the next beat tries again, well within STALE_AFTER_S
                pass

    def release(self) -> None:
        """Stop renewing and remove the lease if it is still this driver's."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with contextlib.suppress(OSError):
            if (read_lease(self.path) or {}).get("session") == self.record["session"]:
                self.path.unlink()


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
    """Keep this process, a sweep's driver, off the accelerators (the command line's
    `--ray` commands call it first; a Python caller of `hypermeta.sweep(cluster=...)` on a GPU
    node sets JAX_PLATFORMS=cpu itself, since this pins the whole process): it plans and checks cells and
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


def cell_threads(cluster: ClusterConfig) -> int:
    """CPU threads a cell may use: its --cell-cpus, whole (at least 1)."""
    return max(1, int(cluster.cell_cpus))


def cell_env(cluster: ClusterConfig) -> dict[str, str]:
    """The environment of a cell's Ray task, set before JAX starts in the worker."""
    from hypermeta import compile_cache
    from hypermeta.envs.mujoco_c import CPU_THREADS_VAR

    threads = str(cell_threads(cluster))
    # The C physics splits a batch over at most this many threads (MjxEnv.c_stepper).
    env = {CPU_THREADS_VAR: threads}
    if cluster.cell_gpus == 0:
        env["JAX_PLATFORMS"] = "cpu"  # a CPU cell on a GPU node must not take the GPU Ray gives to others
        # XLA's CPU client sizes its thread pools (the intra-op Eigen pool that runs a program's
        # parallel work, and the client's own) by PJRT_NPROC, else every core of the node
        # (jaxlib 0.10, xla/pjrt/utils.cc DefaultThreadPoolSize): without it, N cells on an N-core
        # node would each run N threads. GPU cells keep theirs: their host work is the GPU's feeding.
        env["PJRT_NPROC"] = threads
    elif cluster.cell_gpus < 1:  # cells sharing a GPU: JAX must not take 75% of it each
        env["XLA_PYTHON_CLIENT_MEM_FRACTION"] = f"{0.9 * cluster.cell_gpus:.2f}"
    # The driver's --compile-cache PATH (compile_cache.setup exports it to the driver's own
    # environment, which only a --ray local cluster inherits) or its HYPERMETA_COMPILE_CACHE: a
    # remote cluster's workers get it here. Not JAX's own JAX_COMPILATION_CACHE_DIR, which would
    # bypass the checked cache (atomic entries, corrupt ones replaced).
    cache = os.environ.get(compile_cache.ENV_VAR, "").strip()
    if cache:  # absolute: the workers do not share the driver's working directory
        env[compile_cache.ENV_VAR] = cache if cache.lower() == compile_cache.OFF else str(Path(cache).expanduser().absolute())
    return env


def _task(ray, cluster: ClusterConfig):
    """run_cell as a Ray task with the cell's resources, environment (cell_env) and Ray's retries."""
    env = cell_env(cluster)
    return ray.remote(
        num_cpus=cluster.cell_cpus, num_gpus=cluster.cell_gpus,
        # Lost workers and nodes are retried by Ray (max_retries, -1: without limit); of the cell's
        # own errors only an interruption (a checkpoint saved on SIGTERM) and transient I/O errors
        # (network storage) are: the others (a missing file, permission denied, a full disk, a bad
        # configuration, an error in training) would fail again, and an attempt that a newer one
        # superseded (AttemptSuperseded) must stop. Ray matches retry_exceptions by
        # isinstance, hence TransientIOError, not OSError (which FileNotFoundError is too).
        max_retries=cluster.max_retries, retry_exceptions=[CellInterrupted, TransientIOError],
        # A GPU worker exits after its cell: JAX keeps the GPU memory it reserved until then.
        max_calls=1 if cluster.cell_gpus else 0,
        runtime_env={"env_vars": env})(run_cell)


NODE_ID_LABEL = "ray.io/node-id"
"""The label Ray gives every node, its id: a task's label_selector can exclude nodes by it."""


def avoiding(bad_nodes: set[str]) -> dict:
    """Ray task options that keep a task off `bad_nodes` (nodes that do not see the storage)."""
    return {"label_selector": {NODE_ID_LABEL: f"!in({','.join(sorted(bad_nodes))})"}} if bad_nodes else {}


def failure_line(ray, error: Exception) -> str:
    """One line for a failed cell: the cell's own exception, or what Ray lost (a worker or node,
    more often than --max-retries)."""
    cause = (getattr(error, "cause", None) if isinstance(error, ray.exceptions.RayTaskError) else None) or error
    text = next((line for line in str(cause).splitlines() if line.strip()), "")
    return f"{type(cause).__name__}: {text.strip()}"[:500]


def measured_speed(cell: Cell) -> float | None:
    """The cell's training speed in frames/s (all its runs together) as its metrics.csv reports it:
    the median over its chunks but the first (which compiles); None before it reported two chunks."""
    import csv

    by_update: dict[int, float] = {}
    try:
        with open(cell.path / "metrics.csv", newline="") as f:
            for row in csv.DictReader(f):
                with contextlib.suppress(TypeError, ValueError):  # a torn last row
                    by_update[int(row["update"])] = float(row["frames_per_second"])
    except (OSError, KeyError, csv.Error):
        return None
    speeds = sorted(fps for _, fps in sorted(by_update.items())[1:] if fps > 0)
    return speeds[len(speeds) // 2] if speeds else None


def cell_slots(nodes: list[dict], cluster: ClusterConfig) -> int:
    """Cells the cluster's alive nodes run at once, by their CPUs and GPUs."""
    slots = 0
    for node in nodes:
        if not node.get("Alive"):
            continue
        have = node.get("Resources", {})
        fits = [int(have.get(kind, 0) // need + 1e-9) for kind, need in (("CPU", cluster.cell_cpus), ("GPU", cluster.cell_gpus))
                if need > 0]
        slots += min(fits) if fits else 0
    return slots


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


def cluster_estimate(cells: list[Cell], states: dict[str, str], slots: int) -> str:
    """The remaining wall time on this cluster from the speeds its cells reported (measured_speed):
    a cell not measured yet is taken at its method's measured speed, else the median of all. ''
    before any cell reported, or where no node fits a cell. Compilation is not counted."""
    from hypermeta.sweeps.progress import last_frames

    speeds = {c.name: v for c in cells if (v := measured_speed(c)) is not None}
    todo = [c for c in cells if states[c.name] != "finished"]
    if not speeds or not todo or slots <= 0:
        return ""
    typical = sorted(speeds.values())[len(speeds) // 2]
    by_method: dict[str, list[float]] = {}
    for c in cells:
        if c.name in speeds:
            by_method.setdefault("/".join(c.name.split("/")[:2]), []).append(speeds[c.name])
    seconds, frames = [], 0
    for c in todo:
        method = by_method.get("/".join(c.name.split("/")[:2]))
        speed = speeds.get(c.name) or (sorted(method)[len(method) // 2] if method else typical)
        left = max(0, c.frames - last_frames(c))
        frames += left
        seconds.append(left / speed)
    wall = max(sum(seconds) / min(slots, len(todo)), max(seconds))
    return (f"measured on this cluster: {len(speeds)} cells reported their speed (median {typical:,.0f} frames/s "
            f"per cell); the {len(todo)} cells left ({frames / 1e6:,.2f}M frames) take about {_duration(wall)} "
            f"with {slots} cells at once (compilation not counted)")


class _Driver:
    """The submitted cells of one driver session: submits, follows and resubmits them."""

    def __init__(self, ray, task, out: Path, cluster: ClusterConfig, token: str, session: str, train_fn: Callable | None):
        self.ray, self.task, self.out, self.cluster = ray, task, out, cluster
        self.args = (str(out), token, session, train_fn)
        self.pending: dict = {}
        self.bad_nodes: dict[str, str] = {}
        """Node id -> why: nodes that did not see the storage, given no cell again."""

    def submit(self, cell: Cell) -> None:
        options = {"name": cell.name, **avoiding(set(self.bad_nodes))}
        self.pending[self.task.options(**options).remote(cell.cfg.to_dict(), str(cell.path.resolve()), cell.name,
                                                         *self.args)] = cell

    def nodes_left(self) -> int:
        """Alive nodes that could run a cell and are not known to miss the storage."""
        return sum(1 for n in self.ray.nodes() if _can_run_cells(n, self.cluster) and n["NodeID"] not in self.bad_nodes)

    def unreachable(self, cell: Cell, error: Exception, progress: SweepProgress) -> str:
        """A cell whose node did not see the storage: remember the node and submit the cell again
        away from it (and every other such node); '' if resubmitted, else why the cell fails."""
        cause = error.cause
        if not cause.node_id or cause.node_id in self.bad_nodes:  # no node to avoid: it would fail again
            return failure_line(self.ray, error)
        self.bad_nodes[cause.node_id] = progress.nodes_without_storage[cause.node_id] = str(cause)
        progress.say(f"{cell.name}: {str(cause).split(';')[0]}; that node gets no more cells "
                     f"({len(self.bad_nodes)} such node(s))")
        if not self.nodes_left():
            return f"StorageUnreachable: no node left that sees {self.out} ({len(self.bad_nodes)} do not)"
        self.submit(cell)
        return ""

    def follow(self, progress: SweepProgress, lease: DriverLease, refresh_s: float) -> None:
        """Wait for every submitted cell, recording each as done or failed, refreshing the view."""
        ray = self.ray
        while self.pending:
            if lease.lost is not None:
                raise UsageError(f"{self.out} was taken over by another driver ("
                                 f"{lease.lost.get('host', '?')} pid {lease.lost.get('pid', '?')}) while this one "
                                 "was stalled; this driver stopped, the other goes on")
            ready, _ = ray.wait(list(self.pending), num_returns=len(self.pending), timeout=refresh_s)
            for ref in ready:
                cell = self.pending.pop(ref)
                try:
                    progress.done(cell, ray.get(ref))
                except ray.exceptions.RayTaskError as e:
                    why = (self.unreachable(cell, e, progress) if isinstance(getattr(e, "cause", None), StorageUnreachable)
                           else failure_line(ray, e))
                    if why:
                        progress.failed(cell, why)
                except ray.exceptions.RayError as e:
                    progress.failed(cell, failure_line(ray, e))
            progress.refresh()

    def cancel(self) -> None:
        for ref in self.pending:
            self.ray.cancel(ref)


def run_cells(cells: list[Cell], out: Path, cluster: ClusterConfig, show_progress: bool = True,
              train_fn: Callable | None = None, refresh_s: float = 1.0) -> None:
    """Train every unfinished cell on the cluster at `cluster.ray`; raises CellsFailed naming the
    cells that failed by themselves once all others are done."""
    out = out.resolve()
    states = {c.name: cell_status(c) for c in cells}
    if all(state == "finished" for state in states.values()):
        print(f"all {len(cells)} cells in {out} finished before: nothing to train")
        return
    check_address(cluster.ray)  # an address nobody answers on: one line, nothing written in OUT
    envs = sorted({c.name.split("/")[0] for c in cells})
    # The lease before Ray: a second driver is refused in a moment, before it connects or writes.
    with DriverLease(out, envs) as lease, connect(cluster.ray) as ray:
        if lease.took_over:
            print(f"took over {out} from a driver that is gone ({lease.took_over.get('host', '?')} pid "
                  f"{lease.took_over.get('pid', '?')}, started {_when(float(lease.took_over.get('started', 0)))})")
        token = check_storage(ray, out, cluster)
        estimate = cluster_estimate(cells, states, cell_slots(ray.nodes(), cluster))
        if estimate:  # from this cluster's own cells, unlike reproduce's single-machine figures
            print(estimate)
        session = uuid.uuid4().hex[:12]
        driver = _Driver(ray, _task(ray, cluster), out, cluster, token, session, train_fn)
        with SweepProgress(cells, out, session, cluster.ray, show_progress) as progress:
            todo = [c for c in cells if states[c.name] != "finished"]
            for c in cells:
                if states[c.name] == "finished":
                    progress.skipped(c)
            resumed = sum(states[c.name] == "resume" for c in todo)
            progress.say(f"{len(cells)} cells in {out}: {len(cells) - len(todo)} finished before (skipped), "
                         f"{resumed} to resume, {len(todo) - resumed} new; status in {out / STATUS_FILE}")
            for c in todo:
                driver.submit(c)
            try:
                driver.follow(progress, lease, refresh_s)
            except KeyboardInterrupt:
                driver.cancel()
                raise KeyboardInterrupt("stopped; run the same command again to continue (finished cells are "
                                        "skipped, the others resume from their last checkpoint)") from None
            except UsageError:
                driver.cancel()
                raise
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
