"""`hypermeta sweep --ray` on a real local Ray cluster (`ray start --head` on the loopback address).

One cluster of 2 CPUs serves the module. The sweep is Grid-World, RNN and RNN+HN, 2 lrs x 1 seed,
10 updates (checkpoints every 5), small networks: 4 cells of one run each. It runs once on the
cluster, with the worker of one cell killed (SIGKILL) right after its first checkpoint, and once
locally; every test compares with the local sweep. Workers inherit the environment of the
`ray start` process, hence conftest's XLA_FLAGS; the small networks reach them through the
configurations the driver plans (planning is the driver's, with this module's `method_defaults`).
One test starts a 2-node cluster of its own (a node that does not see the storage).
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

# The module's cluster authenticates its drivers with a token of its own, read by Ray when it
# is imported (Ray >= 2.59): the cluster's processes, its workers and this process, the driver,
# get it through the environment.
os.environ.update({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": os.environ.get("RAY_AUTH_TOKEN") or os.urandom(32).hex()})
ray = pytest.importorskip("ray")

from hypermeta.analysis.report import write_report  # noqa: E402
from hypermeta.cli import main  # noqa: E402
from hypermeta.errors import UsageError  # noqa: E402
from hypermeta.sweeps.cell_task import read_record  # noqa: E402
from hypermeta.sweeps.cells import ClusterConfig, plan_cells, split_runs  # noqa: E402
from hypermeta.sweeps.cluster import CellsFailed, lease_path, run_cluster_sweeps  # noqa: E402
from hypermeta.sweeps.sweep import SweepConfig, run_sweep  # noqa: E402

SWEEP = SweepConfig(env="grid-world", methods=("rnn", "rnn-hn"), lr=(1e-3, 3e-4), seeds=(1,), frames=9600)
KILLED = "grid-world/rnn-hn/lr-0.001_seed-1"
"""The cell whose worker is killed after its first checkpoint."""
TIMING = ["frames_per_second"]
"""metrics.csv columns that measure time, not learning."""

# The fault-injecting train functions below run on the cluster's workers, which cannot import
# this test module: Ray sends them by value.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module", autouse=True)
def small_networks():
    """Grid-World's family settings with checkpoints every 5 updates and small networks."""
    import hypermeta.sweeps.sweep as sweep
    from hypermeta.config import GRUConfig

    defaults = sweep.method_defaults

    def small(env, method):
        cfg = defaults(env, method)
        return dataclasses.replace(cfg, checkpoint_interval=5,
                                   model=dataclasses.replace(cfg.model, gru=GRUConfig(16), policy_hidden=(16, 8)))

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sweep, "method_defaults", small)
        yield


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> str:
    """A 2-CPU Ray head node on 127.0.0.1 for the module; its address. `ray start --block` stops
    every process it started when it gets SIGTERM."""
    port = free_port()
    log = open(tmp_path_factory.mktemp("ray") / "head.log", "w")
    # The workers share a JAX compilation cache: a retried cell and later sweeps load the programs
    # the first cells compiled (results do not depend on it; see conftest's compilation_cache).
    cache = {"JAX_COMPILATION_CACHE_DIR": str(tmp_path_factory.mktemp("ray-jax-cache")),
             "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0.5", "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}
    head = subprocess.Popen(
        [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1",
         "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats", "--block",
         # ports of their own where Ray's defaults are fixed (another cluster on the machine keeps its)
         f"--ray-client-server-port={free_port()}", f"--dashboard-agent-listen-port={free_port()}"],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **cache})  # conftest's XLA_FLAGS and the token
    address = f"127.0.0.1:{port}"
    try:
        _wait_for_head(address, head)
        yield address
    finally:
        head.send_signal(signal.SIGTERM)
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            head.kill()
        log.close()


def _wait_for_head(address: str, head: subprocess.Popen, timeout: float = 120, cpus: int = 2) -> None:
    """Until a driver can connect and the node has registered its CPUs."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert head.poll() is None, "ray start --head exited"
        try:
            ray.init(address=address, logging_level="error", log_to_driver=False)
            try:
                if ray.cluster_resources().get("CPU") == cpus:
                    return
            finally:
                ray.shutdown()
        except (ConnectionError, RuntimeError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"no Ray head at {address} after {timeout} s")


def fault_plan(cfg, path, resume, show_progress, faults: dict[str, str], fence=None):
    """`train` with a fault for the cells whose path ends with a key of `faults`: 'kill' (the
    worker process dies by SIGKILL right after the cell's first checkpoint, once: the file
    `faults['flag']` marks it), 'error' (raises at once), 'hang' (sleeps after the first
    checkpoint until its driver is lost), 'missing' (a file not found), 'usage' (a bad
    configuration), 'eio' (an I/O error, once: the file `faults['flag']` marks it)."""
    from hypermeta.rundir import RunDir
    from hypermeta.training.loop import train

    fault = next((f for key, f in faults.items() if Path(path).as_posix().endswith("/" + key)), None)
    if fault == "error":
        raise FloatingPointError(f"injected: lr {cfg.lr[0]} is impossible")
    if fault == "missing":
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", f"{path}/injected.npz")
    if fault == "usage":
        raise UsageError(f"injected: {cfg.method} cannot train lr {cfg.lr[0]}")
    if fault == "eio" and not Path(faults["flag"]).exists():
        Path(faults["flag"]).touch()
        raise OSError(errno.EIO, "Input/output error", f"{path}/metrics.csv")
    if fault == "hang" or (fault == "kill" and not Path(faults["flag"]).exists()):
        save = RunDir.save_checkpoint

        def save_then_fail(self, update, state):
            save(self, update, state)
            if fault == "hang":
                time.sleep(600)
            Path(faults["flag"]).touch()
            os.kill(os.getpid(), signal.SIGKILL)

        RunDir.save_checkpoint = save_then_fail  # in this worker process only
    return train(cfg, path, resume=resume, show_progress=show_progress, fence=fence)


def with_faults(**faults):
    import functools

    return functools.partial(fault_plan, faults=faults)


@pytest.fixture(scope="module")
def local_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local")
    run_sweep(SWEEP, out, show_progress=False)
    return out


@pytest.fixture(scope="module")
def ray_dir(cluster, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("on-ray")
    flag = tmp_path_factory.mktemp("flags") / "killed"
    train_fn = with_faults(**{KILLED.split("/", 1)[1]: "kill", "flag": str(flag)})
    run_cluster_sweeps([SWEEP], out, ClusterConfig(ray=cluster), show_progress=False, train_fn=train_fn, refresh_s=0.2)
    assert flag.exists()  # the worker was killed
    return out


def runs_table(out: Path) -> pd.DataFrame:
    """Every metrics.csv row below `out`, timing columns dropped, sorted by run and update."""
    rows = pd.concat([pd.read_csv(p).assign(method=p.parent.relative_to(out).parts[1])
                      for p in sorted(out.rglob("metrics.csv"))], ignore_index=True)
    return rows.drop(columns=TIMING).sort_values(["method", "lr", "seed", "update"], ignore_index=True)


def report_text(out: Path, where: Path) -> tuple[str, pd.DataFrame]:
    write_report([out], where)
    text = (where / "report.md").read_text()
    return re.sub(r"from \d+ run directories", "from N run directories", text), pd.read_csv(where / "scores.csv")


def snapshot(path: Path) -> dict[str, int]:
    return {str(p.relative_to(path)): p.stat().st_mtime_ns for p in sorted(path.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------- on the cluster


def assert_same_runs(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    """The same runs, evaluations and returns; training statistics equal up to float rounding: a
    run alone in its program and one of several (lax.map) compile to different XLA programs that
    sum in another order (relative differences up to about 2e-5 after 10 updates here)."""
    assert got.columns.tolist() == expected.columns.tolist()
    exact = ["method", "seed", "lr", "update", "frames", "diverged",
             *(c for c in got.columns if c.endswith("_return"))]
    pd.testing.assert_frame_equal(got[exact], expected[exact], check_exact=True)
    pd.testing.assert_frame_equal(got, expected, rtol=1e-4, atol=1e-6)


def test_cells_on_ray_equal_the_local_sweep(ray_dir, local_dir, tmp_path):
    """4 cells of one run each, one of them retried after its worker was killed: the same metrics
    and the same report as the local sweep's 2 run directories of 2 runs."""
    cells = sorted(p.parent.relative_to(ray_dir).as_posix() for p in ray_dir.rglob("summary.json"))
    assert cells == ["grid-world/rnn-hn/lr-0.0003_seed-1", "grid-world/rnn-hn/lr-0.001_seed-1",
                     "grid-world/rnn/lr-0.0003_seed-1", "grid-world/rnn/lr-0.001_seed-1"]
    assert_same_runs(runs_table(ray_dir), runs_table(local_dir))
    on_ray, on_ray_scores = report_text(ray_dir, tmp_path / "ray-report")
    local, local_scores = report_text(local_dir, tmp_path / "local-report")
    assert on_ray == local and "| grid-world | RNN+HN | " in on_ray
    pd.testing.assert_frame_equal(on_ray_scores, local_scores)


def test_a_killed_worker_is_retried_and_resumes_from_its_checkpoint(ray_dir):
    attempts = read_record(ray_dir, KILLED)["attempts"]
    assert [a["start_update"] for a in attempts] == [0, 5]  # the retry continued from checkpoint 5
    assert attempts[0]["pid"] != attempts[1]["pid"]
    status = json.loads((ray_dir / "sweep-status.json").read_text())
    assert status["finished"] and status["cells"] == {"total": 4, "done": 4, "running": 0, "waiting": 0, "failed": 0}
    assert status["frames"] == {"done": 4 * 9600, "total": 4 * 9600}
    killed = next(c for c in status["cell_states"] if c["name"] == KILLED)
    assert killed["attempts"] == 2 and killed["start_update"] == 5 and killed["state"] == "done"
    # resumed rows are not counted twice: one row per evaluation
    assert pd.read_csv(ray_dir / KILLED / "metrics.csv")["update"].tolist() == [5, 10]
    assert not lease_path(ray_dir).exists()  # the driver gave the sweep directory up when it ended


def test_driver_lost_then_the_same_command_finishes_the_rest(cluster, ray_dir, tmp_path, monkeypatch):
    """The finished sweep gets a third lr. Its driver is lost while the new RNN cell is mid-way
    (past its first checkpoint): the same command again skips the 4 finished cells and resumes the
    new one from its checkpoint; a cell that fails by itself (RNN+HN at the new lr) is reported
    with its error, is not retried, and does not stop the others."""
    import hypermeta.sweeps.progress as progress

    out = tmp_path / "sweep"
    shutil.copytree(ray_dir, out)
    finished = {name: snapshot(out / name) for name in (p.parent.relative_to(out).as_posix()
                                                         for p in out.rglob("summary.json"))}
    assert len(finished) == 4
    more, cfg = dataclasses.replace(SWEEP, lr=(1e-3, 3e-4, 1e-4)), ClusterConfig(ray=cluster)
    new, failing = "grid-world/rnn/lr-0.0001_seed-1", "grid-world/rnn-hn/lr-0.0001_seed-1"

    class DriverLost(Exception):
        pass

    refresh = progress.SweepProgress.refresh

    def refresh_then_lost(self, finished=False):
        refresh(self, finished)
        if (out / new / "checkpoints" / "5").is_dir():
            raise DriverLost  # the driver disconnects: Ray ends its running cells

    with monkeypatch.context() as mp:
        mp.setattr(progress.SweepProgress, "refresh", refresh_then_lost)
        with pytest.raises(DriverLost):
            run_cluster_sweeps([more], out, cfg, show_progress=False, refresh_s=0.2,
                               train_fn=with_faults(**{new.split("/", 1)[1]: "hang", failing.split("/", 1)[1]: "error"}))
    assert not (out / new / "summary.json").exists()

    with pytest.raises(CellsFailed, match=rf"1 of 6 cells failed \({failing};"):
        run_cluster_sweeps([more], out, cfg, show_progress=False, refresh_s=0.2,
                           train_fn=with_faults(**{failing.split("/", 1)[1]: "error"}))
    assert {name: snapshot(out / name) for name in finished} == finished  # not trained again
    status = json.loads((out / "sweep-status.json").read_text())
    attempts = [a for a in read_record(out, new)["attempts"] if a["session"] == status["session"]]
    assert [a["start_update"] for a in attempts] == [5]  # resumed, not started over
    assert (out / new / "summary.json").exists()
    assert pd.read_csv(out / new / "metrics.csv")["update"].tolist() == [5, 10]  # nothing counted twice
    assert status["cells"] == {"total": 6, "done": 5, "running": 0, "waiting": 0, "failed": 1}
    failed = [c for c in status["cell_states"] if c["state"] == "failed"]
    assert [(c["name"], c["attempts"]) for c in failed] == [(failing, 1)]  # not retried
    assert failed[0]["error"] == "FloatingPointError: injected: lr 0.0001 is impossible"


def test_deterministic_errors_fail_at_once_transient_ones_are_retried(cluster, tmp_path, monkeypatch):
    """Of 3 cells, a missing file and a bad configuration fail on their first attempt with their
    line (Ray does not retry them: they would fail again); an I/O error (EIO, as of network
    storage) is retried and the cell finishes."""
    sweep = dataclasses.replace(SWEEP, methods=("rnn",), lr=(1e-3, 3e-4, 1e-4))
    missing, usage, eio = (f"grid-world/rnn/lr-{lr}_seed-1" for lr in ("0.001", "0.0003", "0.0001"))
    faults = {missing.split("/", 1)[1]: "missing", usage.split("/", 1)[1]: "usage", eio.split("/", 1)[1]: "eio",
              "flag": str(tmp_path / "eio-once")}
    out = tmp_path / "sweep"
    with pytest.raises(CellsFailed, match=r"^2 of 3 cells failed"):
        run_cluster_sweeps([sweep], out, ClusterConfig(ray=cluster, max_retries=-1), show_progress=False,
                           refresh_s=0.2, train_fn=with_faults(**faults))
    status = {c["name"]: c for c in json.loads((out / "sweep-status.json").read_text())["cell_states"]}
    assert {name: (c["state"], c["attempts"], c["error"]) for name, c in status.items()} == {
        missing: ("failed", 1, f"FileNotFoundError: [Errno 2] No such file or directory: '{out / missing}/injected.npz'"),
        usage: ("failed", 1, "UsageError: injected: rnn cannot train lr 0.0003"),
        eio: ("done", 2, ""),
    }
    assert (out / eio / "summary.json").exists() and (tmp_path / "eio-once").exists()


def test_a_node_that_does_not_see_the_storage_gets_no_more_cells(cluster, tmp_path, capsys, monkeypatch):
    """The only node stops seeing the driver's storage after the check (here: the driver's token
    changes): the first cell to fail marks the node, which leaves no node for it; the other cell
    is not tried on it again. Both fail at once, with one line each. Ray's label selector keeps a
    task off the nodes given (a task avoiding the only node waits; one avoiding another runs)."""
    import hypermeta.sweeps.cluster as cluster_module
    from hypermeta.sweeps.cluster import avoiding

    monkeypatch.setattr(cluster_module, "check_storage", lambda ray, out, cfg: "not-the-marker's-token")
    sweep, out = dataclasses.replace(SWEEP, methods=("rnn",)), tmp_path / "sweep"
    with pytest.raises(CellsFailed, match=r"^2 of 2 cells failed"):
        run_cluster_sweeps([sweep], out, ClusterConfig(ray=cluster), show_progress=False, refresh_s=0.2)
    said = capsys.readouterr().out
    assert len(re.findall(r"does not see the driver's .*; that node gets no more cells \(1 such node\(s\)\)", said)) == 1
    errors = [c["error"] for c in json.loads((out / "sweep-status.json").read_text())["cell_states"]]
    left = f"StorageUnreachable: no node left that sees {out} (1 do not)"
    assert left in errors
    other = next(e for e in errors if e != left)
    assert other.startswith("StorageUnreachable: ") and "does not see the driver's" in other
    assert not (out / "grid-world").exists()

    ray.init(address=cluster, logging_level="error", log_to_driver=False)
    try:
        node = ray.get_runtime_context().get_node_id()
        where = ray.remote(num_cpus=0)(lambda: ray.get_runtime_context().get_node_id())
        assert ray.get(where.options(**avoiding({"f" * 56})).remote(), timeout=120) == node
        stuck = where.options(**avoiding({node})).remote()
        assert ray.wait([stuck], timeout=3)[0] == []
        ray.cancel(stuck)
    finally:
        ray.shutdown()


def can_hide_a_directory() -> bool:
    """Whether a process here may mount over a directory in a mount namespace of its own (root, unshare)."""
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", "mount -t tmpfs tmpfs /mnt"],
                           capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not can_hide_a_directory(), reason="needs unshare and mount (root) to hide the storage from a node")
def test_cells_are_rescheduled_away_from_a_node_that_joined_without_the_storage(tmp_path, monkeypatch, capsys):
    """A cluster of its own: a 1-CPU head and, once the driver's storage check has passed, a
    2-CPU node whose processes see an empty directory where the sweep is (a tmpfs over it, in a
    mount namespace: a node that mounts nothing there). The cell Ray places on that node fails
    there, is submitted again away from it and trains on the head; both cells finish there."""
    import hypermeta.sweeps.cluster as cluster_module

    shared = tmp_path / "shared"
    out = shared / "sweep"
    shared.mkdir()
    port, logs, procs = free_port(), tmp_path / "logs", []
    logs.mkdir()
    common = ["--disable-usage-stats", "--block"]

    def start(argv: list[str], name: str) -> None:
        procs.append(subprocess.Popen(argv, stdout=open(logs / name, "w"), stderr=subprocess.STDOUT))

    check = cluster_module.check_storage

    def check_then_join(ray_, out_, cfg):
        token = check(ray_, out_, cfg)  # the head sees the storage
        start(["unshare", "--mount", "--propagation", "private", "sh", "-c",
               f'mount -t tmpfs tmpfs "{shared}" && exec "{sys.executable}" -m ray.scripts.scripts start '
               f'--address=127.0.0.1:{port} --node-ip-address=127.0.0.1 --num-cpus=2 '
               f'--dashboard-agent-listen-port={free_port()} {" ".join(common)}'], "blind-node.log")
        deadline = time.time() + 120
        while ray_.cluster_resources().get("CPU") != 3:
            assert time.time() < deadline and procs[-1].poll() is None, "the second node did not join"
            time.sleep(0.5)
        return token

    monkeypatch.setattr(cluster_module, "check_storage", check_then_join)
    start([sys.executable, "-m", "ray.scripts.scripts", "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1",
           "--num-cpus=1", "--include-dashboard=false", f"--ray-client-server-port={free_port()}",
           f"--dashboard-agent-listen-port={free_port()}", *common], "head.log")
    try:
        _wait_for_head(f"127.0.0.1:{port}", procs[0], cpus=1)
        sweep = dataclasses.replace(SWEEP, methods=("rnn",))
        run_cluster_sweeps([sweep], out, ClusterConfig(ray=f"127.0.0.1:{port}"), show_progress=False, refresh_s=0.2)
    finally:
        for proc in reversed(procs):
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
    said = capsys.readouterr().out
    assert len(re.findall(r"does not see the driver's .*; that node gets no more cells \(1 such node\(s\)\)", said)) == 1
    status = json.loads((out / "sweep-status.json").read_text())
    assert status["cells"] == {"total": 2, "done": 2, "running": 0, "waiting": 0, "failed": 0}
    (blind,) = status["nodes_without_storage"]
    for cell in status["cell_states"]:
        attempts = read_record(out, cell["name"])["attempts"]
        assert len(attempts) == 1 and attempts[0]["node_id"] != blind  # trained on the head only
        assert (out / cell["name"] / "summary.json").exists()


def test_an_output_path_the_workers_do_not_see_is_refused(cluster, tmp_path, capsys, monkeypatch):
    """`hypermeta sweep --ray ADDRESS` whose driver writes its marker where the workers do not
    look (as on a node-local disk): one line, nothing trained."""
    import hypermeta.sweeps.cluster as cluster_module

    elsewhere = tmp_path / "driver-local-disk"
    write = cluster_module.write_storage_marker
    monkeypatch.setattr(cluster_module, "write_storage_marker", lambda out, token: write(elsewhere, token))
    code, _, err = run_cli([*SWEEP_ARGS, "--out", str(tmp_path / "out"), "--ray", cluster], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert re.search(r"is not on storage that every node shares: .* does not see the driver's .*nothing was started", err)
    assert not (tmp_path / "out" / "grid-world").exists()


def test_reproduce_submits_every_environment_at_once(tmp_path, capsys, monkeypatch):
    """fig12 on a cluster: Grid-World's and Walker's cells in one submission, then the report."""
    import hypermeta.analysis.report as report
    import hypermeta.sweeps.cluster as cluster_module

    calls = []
    monkeypatch.setattr(cluster_module, "run_cluster_sweeps", lambda sweeps, out, cfg: calls.append((sweeps, out, cfg)))
    monkeypatch.setattr(report, "write_report", lambda paths, out, title: calls.append(("report", out)) or [])
    code, _, err = run_cli(["reproduce", "fig12", "--frames", "9600", "--lr", "1e-3", "--out", str(tmp_path),
                            "--ray", "auto", "--cell-gpus", "1"], capsys)
    assert code == 0, err
    (sweeps, out, cfg), last = calls
    assert [(s.env, s.frames, s.lr) for s in sweeps] == [("grid-world", 9600, (1e-3,)), ("walker-params", 9600, (1e-3,))]
    assert out == tmp_path and (cfg.ray, cfg.cell_gpus) == ("auto", 1) and last == ("report", tmp_path / "report")


# --------------------------------------------------------------------------- bad input, nothing started


def run_cli(argv, capsys):
    try:
        main(argv)
        code = 0
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


SWEEP_ARGS = ["sweep", "--env", "grid-world", "--methods", "rnn", "--lr", "1e-3", "--seeds", "1", "--frames", "9600"]


def test_missing_ray_extra_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails as if not installed
    code, _, err = run_cli([*SWEEP_ARGS, "--out", str(tmp_path / "s"), "--ray", "local"], capsys)
    assert code == 2 and err.strip() == 'hypermeta: error: --ray needs Ray, which is not installed: pip install -e ".[ray]"'
    assert not (tmp_path / "s").exists()


def test_unreachable_address_is_one_line(tmp_path, capsys):
    code, _, err = run_cli([*SWEEP_ARGS, "--out", str(tmp_path / "s"), "--ray", f"127.0.0.1:{free_port()}"], capsys)
    assert code == 2 and "no Ray cluster answers there" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "s").exists()


# --------------------------------------------------------------------------- planning


def test_cells_hold_products_of_seeds_and_lrs():
    seeds, lrs = (73, 20, 3), (3e-3, 1e-3, 3e-4, 1e-4, 3e-5)
    assert split_runs(seeds, lrs, 0) == [(seeds, lrs)]  # a GPU cell: every run of the method
    assert split_runs(seeds, lrs, 1) == [((s,), (lr,)) for lr in lrs for s in seeds]
    assert split_runs(seeds, lrs, 2) == [(s, (lr,)) for lr in lrs for s in ((73, 20), (3,))]
    assert split_runs(seeds, lrs, 6) == [(seeds, lrs[0:2]), (seeds, lrs[2:4]), (seeds, lrs[4:5])]


def test_cell_layout(tmp_path, local_dir):
    cpu = plan_cells(SWEEP, tmp_path, ClusterConfig(ray="local"))
    assert [c.name for c in cpu] == ["grid-world/rnn/lr-0.001_seed-1", "grid-world/rnn-hn/lr-0.001_seed-1",
                                     "grid-world/rnn/lr-0.0003_seed-1", "grid-world/rnn-hn/lr-0.0003_seed-1"]
    assert [(c.cfg.method, c.cfg.lr, c.cfg.seeds, c.frames) for c in cpu[::2]] == [
        ("rnn", (1e-3,), (1,), 9600), ("rnn", (3e-4,), (1,), 9600)]
    gpu = plan_cells(SWEEP, tmp_path, ClusterConfig(ray="local", cell_gpus=1))
    assert [(c.name, c.cfg.lr) for c in gpu] == [("grid-world/rnn", (1e-3, 3e-4)), ("grid-world/rnn-hn", (1e-3, 3e-4))]
    # a local sweep's run directories are cells as they are, whatever the cells' size
    assert [c.path for c in plan_cells(SWEEP, local_dir, ClusterConfig(ray="local"))] == [
        local_dir / "grid-world/rnn", local_dir / "grid-world/rnn-hn"]


def test_a_local_sweep_refuses_a_directory_split_into_cells(ray_dir):
    with pytest.raises(UsageError, match=r"grid-world/rnn holds a sweep split into cells by --ray"):
        run_sweep(SWEEP, ray_dir, show_progress=False)


def test_progress_view_and_status_file(tmp_path, capsys):
    """The driver's view from what cells leave on the storage: one finished before, one failed,
    one running (its attempt record and the last row of its metrics.csv), one waiting."""
    from hypermeta.rundir import atomic_write_json
    from hypermeta.sweeps.cell_task import record_path
    from hypermeta.sweeps.progress import SweepProgress

    cells = plan_cells(SWEEP, tmp_path, ClusterConfig(ray="local"))
    view = SweepProgress(cells, tmp_path, "s1", "local", show=False)
    view.skipped(cells[0])
    view.failed(cells[1], "FloatingPointError: injected")
    atomic_write_json(record_path(tmp_path, cells[2].name),
                      {"attempts": [{"session": "s0", "node": "a", "pid": 1, "start_update": 0, "time": 0},
                                    {"session": "s1", "node": "b", "pid": 2, "start_update": 5, "time": 1}]})
    cells[2].path.mkdir(parents=True)
    (cells[2].path / "metrics.csv").write_text("seed,lr,update,frames\n1,0.0003,5,4800\n1,0.0003,10,96")  # torn
    view.refresh()
    assert "FAILED: FloatingPointError: injected" in capsys.readouterr().out
    assert view._lines(fps=1234.4, eta=3725) == (
        "cells: 1 done, 1 running, 1 waiting, 1 failed (of 4)\n"
        "frames: 0.01M/0.04M (38%), 1,234 frames/s over the cluster, ETA 1:02:05")
    status = json.loads((tmp_path / "sweep-status.json").read_text())
    assert status["cells"] == {"total": 4, "done": 1, "running": 1, "waiting": 1, "failed": 1}
    assert status["frames"] == {"done": 9600 + 4800, "total": 4 * 9600} and not status["finished"]
    running = status["cell_states"][2]
    assert (running["state"], running["attempts"], running["node"], running["start_update"]) == ("running", 1, "b", 5)


# --------------------------------------------------------------------------- the driver and the cells' devices


def test_the_driver_starts_no_jax_backend_and_keeps_jax_off_accelerators(tmp_path):
    """`hypermeta sweep --ray` up to submitting its cells: Grid-World's planning starts no JAX
    backend; MuJoCo's checks build the environment, on the CPU only (JAX pinned there)."""
    code = f"""
import jax, hypermeta.cli as cli, hypermeta.sweeps.cluster as cluster
from jax._src import xla_bridge
seen = []
cluster.run_cells = lambda cells, *args, **kwargs: seen.append(
    [cells[0].name, xla_bridge.backends_are_initialized(), sorted(xla_bridge._backends), jax.config.jax_platforms])
for env in ("grid-world", "cheetah-vel"):
    cli.main(["sweep", "--env", env, "--methods", "rnn", "--lr", "1e-3", "--seeds", "1", "--out", {str(tmp_path)!r} + "/" + env,
              "--ray", "local"])
print(seen)
"""
    env = {k: v for k, v in os.environ.items() if k != "JAX_PLATFORMS"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == str([["grid-world/rnn", False, [], "cpu"],
                                                        ["cheetah-vel/rnn", True, ["cpu"], "cpu"]])


def test_a_driver_of_another_kind_continues_a_sweep_whose_cells_recorded_their_physics(tmp_path, monkeypatch, capsys):
    """GPU cells recorded physics "mjx"; the sweep asks "auto", which is "c" on the driver's CPU:
    the driver plans the sweep and skips its finished cells all the same (it resolves nothing:
    cells do). A cell that would resume on a CPU worker refuses with one line naming both engines."""
    import hypermeta.config as config
    import hypermeta.envs.registry as registry
    from hypermeta.rundir import atomic_write_json
    from hypermeta.sweeps.cell_task import run_cell, write_storage_marker
    from hypermeta.sweeps.cells import cell_status

    monkeypatch.setattr(config, "resolve_physics", lambda physics: "c" if physics == "auto" else physics)
    monkeypatch.setattr(registry, "resolve_physics", config.resolve_physics)
    sweep, cluster = SweepConfig(env="cheetah-vel", methods=("rnn",), lr=(1e-3, 3e-4), seeds=(1,)), ClusterConfig(ray="local")
    cells = plan_cells(sweep, tmp_path, cluster)
    for cell in cells:  # as the GPU cells left them
        assert cell.cfg.physics == "auto"
        cell.path.mkdir(parents=True)
        atomic_write_json(cell.path / "config.json", dataclasses.replace(cell.cfg, physics="mjx").to_dict())
        atomic_write_json(cell.path / "summary.json", {})
    assert [cell_status(c) for c in plan_cells(sweep, tmp_path, cluster)] == ["finished", "finished"]
    assert run_cluster_sweeps([sweep], tmp_path, cluster, show_progress=False) == cells  # then reproduce's report
    assert "all 2 cells" in capsys.readouterr().out

    (cells[1].path / "summary.json").unlink()
    assert cell_status(cells[1]) == "resume"
    write_storage_marker(tmp_path, "token")
    with pytest.raises(UsageError) as e:
        run_cell(cells[1].cfg.to_dict(), str(cells[1].path), cells[1].name, str(tmp_path), "token", "session")
    assert "holds a run with physics='mjx', but this sweep asks for physics='auto (c on this machine)'" in str(e.value)
    assert len(str(e.value).splitlines()) == 1
