"""One driver per sweep directory: the lease of `hypermeta sweep --ray` (hypermeta.sweeps.cluster.DriverLease).

No Ray cluster is started: a second driver is refused before it connects to one.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import hypermeta.sweeps.cluster as cluster
from hypermeta.cli import main
from hypermeta.errors import UsageError
from hypermeta.rundir import atomic_write_json
from hypermeta.sweeps.cells import ClusterConfig
from hypermeta.sweeps.cluster import DriverLease, lease_path, read_lease

# Whether Ray is installed, without importing it: Ray reads its auth settings when first
# imported, and tests/test_ray_sweep.py sets them at its own import, collected after this module.
if importlib.util.find_spec("ray") is None:
    pytest.skip("needs the ray extra", allow_module_level=True)

SWEEP_ARGS = ["sweep", "--env", "grid-world", "--methods", "rnn", "--lr", "1e-3", "--seeds", "1", "--frames", "9600"]


def run_cli(argv, capsys):
    try:
        main(argv)
        code = 0
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_second_driver_is_refused_while_the_first_holds_a_live_lease(tmp_path, capsys, monkeypatch):
    """The first driver holds the lease and renews it; the second (the CLI, on the same --out, another
    environment too) is refused with one line naming the owner, and leaves the lease alone."""
    monkeypatch.setattr(cluster, "HEARTBEAT_S", 0.05)
    with DriverLease(tmp_path, ["grid-world"]) as first:
        before = read_lease(lease_path(tmp_path))
        assert before["session"] == first.record["session"] and before["pid"] == os.getpid()
        time.sleep(0.5)
        assert read_lease(lease_path(tmp_path))["renewed"] > before["renewed"]  # the heartbeat renews it
        for env in ("grid-world", "cheetah-vel"):
            code, _, err = run_cli([*SWEEP_ARGS[:2], env, *SWEEP_ARGS[3:], "--out", str(tmp_path), "--ray", "local"],
                                   capsys)
            assert code == 2 and len(err.strip().splitlines()) == 1, err
            started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(before["started"]))
            assert re.fullmatch(
                rf"hypermeta: error: --out {re.escape(str(tmp_path))} belongs to another driver: "
                rf"{re.escape(socket.gethostname())} pid {os.getpid()}, started {started} \(grid-world\), its lease "
                r"renewed \d+ s ago; wait for it to end or stop it, or use another --out \(a driver that died loses "
                r"the directory 30 s after its last renewal\)", err.strip()), err
        assert read_lease(lease_path(tmp_path))["session"] == first.record["session"]
        assert not (tmp_path / "grid-world").exists() and not (tmp_path / "cheetah-vel").exists()
        assert first.lost is None and first.renew()
    assert not lease_path(tmp_path).exists()  # released at the end


@pytest.mark.parametrize("owner", ["dead pid on this host", "no renewal for longer than stale_after", "unreadable"])
def test_a_stale_lease_is_taken_over(tmp_path, owner):
    now = time.time()
    stale = {"dead pid on this host": {"host": socket.gethostname(), "pid": dead_pid(), "renewed": now},
             "no renewal for longer than stale_after": {"host": "node7", "pid": 1, "renewed": now - 31},
             "unreadable": None}[owner]
    path = lease_path(tmp_path)
    if stale is None:
        path.parent.mkdir(parents=True)
        path.write_text('{"session": "a torn')
    else:
        stale.update(session="old", started=now - 3600, stale_after=30.0, envs=["grid-world"])
        atomic_write_json(path, stale)
    with DriverLease(tmp_path, ["grid-world"]) as lease:
        assert lease.took_over == (stale or {})
        assert read_lease(path)["session"] == lease.record["session"]
    assert not path.exists() and not [p.name for p in path.parent.iterdir()]  # nothing left aside


def test_a_live_lease_on_another_host_is_not_taken_over(tmp_path):
    """Another host's live lease (renewed 20 s ago, within its 30 s) is refused: its pid means nothing here."""
    path = lease_path(tmp_path)
    live = {"session": "other", "host": "node7", "pid": dead_pid(), "renewed": time.time() - 20,
            "started": time.time() - 3600, "stale_after": 30.0, "envs": ["grid-world"]}
    atomic_write_json(path, live)
    with pytest.raises(UsageError, match=r"belongs to another driver: node7 pid \d+, .*renewed 20 s ago"):
        DriverLease(tmp_path, ["grid-world"]).acquire()
    assert json.loads(path.read_text()) == live


def test_a_driver_whose_lease_was_taken_over_stops(tmp_path, monkeypatch):
    """A driver stalled past stale_after (its lease looks dead) is succeeded; when it wakes up its next
    renewal finds the successor's lease, and its follow loop stops with one line before waiting on Ray."""
    from hypermeta.sweeps.cells import plan_cells
    from hypermeta.sweeps.cluster import _Driver
    from hypermeta.sweeps.sweep import SweepConfig

    monkeypatch.setattr(cluster, "HEARTBEAT_S", 3600)  # no heartbeat: the test renews by hand
    first = DriverLease(tmp_path, ["grid-world"])
    first.acquire()
    try:
        stalled = {**first.record, "renewed": time.time() - 60}
        atomic_write_json(lease_path(tmp_path), stalled)
        with DriverLease(tmp_path, ["grid-world"]) as second:
            assert second.took_over["session"] == first.record["session"]
            assert not first.renew() and first.lost["session"] == second.record["session"]
            cell = plan_cells(SweepConfig(methods=("rnn",), lr=(1e-3,), seeds=(1,)), tmp_path, ClusterConfig(ray="local"))[0]
            driver = _Driver(None, None, tmp_path, ClusterConfig(ray="local"), "token", "s", None)
            driver.pending = {"ref": cell}
            with pytest.raises(UsageError, match=rf"^{re.escape(str(tmp_path))} was taken over by another driver "
                                                 rf"\(.* pid {os.getpid()}\) while this one was stalled"):
                driver.follow(None, first, refresh_s=0.1)
            first.release()  # the first driver's exit leaves the successor's lease alone
            assert read_lease(lease_path(tmp_path))["session"] == second.record["session"]
    finally:
        first.release()


def test_max_retries(tmp_path, capsys):
    """-1 is Ray's "without limit"; below that is one line."""
    ray = pytest.importorskip("ray")
    from hypermeta.sweeps.cluster import _task

    assert _task(ray, ClusterConfig(max_retries=-1))._default_options["max_retries"] == -1
    assert _task(ray, ClusterConfig(max_retries=-1))._default_options["retry_exceptions"] == [
        cluster.CellInterrupted, cluster.TransientIOError]
    code, _, err = run_cli([*SWEEP_ARGS, "--out", str(tmp_path), "--ray", "local", "--max-retries", "-2"], capsys)
    assert code == 2 and err.strip() == (
        "hypermeta: error: --max-retries must be >= 0, or -1 to retry without limit; got -2")
    assert not Path(tmp_path / "grid-world").exists()
    from hypermeta.sweeps.cells import plan_cells
    from hypermeta.sweeps.sweep import SweepConfig

    assert plan_cells(SweepConfig(methods=("rnn",), lr=(1e-3,), seeds=(1,)), tmp_path, ClusterConfig(max_retries=-1))
