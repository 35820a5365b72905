"""A sweep cell's attempts and resources, without a Ray cluster: the attempt fence
(hypermeta.sweeps.cell_task.claim_attempt), the environment of a cell's task (hypermeta.sweeps.cluster.cell_env)
and the driver's estimate of the remaining time from the cells' measured speed."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from hypermeta.families import method_defaults
from hypermeta.sweeps.cell_task import AttemptSuperseded, attempt_path, claim_attempt
from hypermeta.sweeps.cells import ClusterConfig, plan_cells
from hypermeta.sweeps.cluster import cell_env, cell_slots, cluster_estimate, measured_speed
from hypermeta.sweeps.sweep import SweepConfig


def test_a_superseded_attempt_raises_and_the_current_one_does_not(tmp_path):
    old = claim_attempt(tmp_path, "grid-world/rnn/lr-0.001_seed-1")
    old()  # still its own
    new = claim_attempt(tmp_path, "grid-world/rnn/lr-0.001_seed-1")
    with pytest.raises(AttemptSuperseded, match="a newer attempt of this cell started"):
        old()
    new()
    attempt_path(tmp_path, "grid-world/rnn/lr-0.001_seed-1").unlink()  # the bookkeeping removed: nobody's
    with pytest.raises(AttemptSuperseded):
        new()


def test_a_stale_attempt_writes_nothing_after_a_newer_one_began(tmp_path):
    """A real training run whose cell is claimed by a newer attempt after its first chunk and
    checkpoint: it stops before the second chunk's metrics row, checkpoint or summary."""
    from hypermeta.config import GRUConfig
    from hypermeta.training.loop import train

    base = method_defaults("grid-world", "rnn")
    cfg = dataclasses.replace(base, frames=14400, seeds=(1,), lr=(1e-3,), eval_interval=5, checkpoint_interval=5,
                              model=dataclasses.replace(base.model, gru=GRUConfig(16), policy_hidden=(16, 8)))
    name, run = "grid-world/rnn", tmp_path / "grid-world" / "rnn"
    fence, calls = claim_attempt(tmp_path, name), []

    def fenced():
        calls.append(len(calls))
        if len(calls) == 3:  # before chunk 2's writes (chunk 1: its rows, then checkpoint 5)
            claim_attempt(tmp_path, name)  # the next driver's attempt of the cell starts
        fence()

    with pytest.raises(AttemptSuperseded):
        train(cfg, run, show_progress=False, fence=fenced)
    assert pd.read_csv(run / "metrics.csv")["update"].tolist() == [5]
    assert sorted(p.name for p in (run / "checkpoints").iterdir() if p.name.isdigit()) == ["5"]
    assert not (run / "summary.json").exists()


def test_a_cell_task_is_limited_to_its_cpus(tmp_path, monkeypatch):
    monkeypatch.delenv("HYPERMETA_COMPILE_CACHE", raising=False)
    assert cell_env(ClusterConfig(cell_cpus=1)) == {
        "JAX_PLATFORMS": "cpu", "PJRT_NPROC": "1", "HYPERMETA_CPU_THREADS": "1"}
    assert cell_env(ClusterConfig(cell_cpus=2.5))["PJRT_NPROC"] == "2"
    assert cell_env(ClusterConfig(cell_cpus=0.5))["HYPERMETA_CPU_THREADS"] == "1"
    gpu = cell_env(ClusterConfig(cell_cpus=4, cell_gpus=0.5))  # a GPU cell's host threads are left alone
    assert gpu == {"HYPERMETA_CPU_THREADS": "4", "XLA_PYTHON_CLIENT_MEM_FRACTION": "0.45"}
    # --compile-cache PATH (exported by compile_cache.setup) reaches remote workers, made absolute
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HYPERMETA_COMPILE_CACHE", "cache")
    assert cell_env(ClusterConfig())["HYPERMETA_COMPILE_CACHE"] == str(tmp_path / "cache")
    monkeypatch.setenv("HYPERMETA_COMPILE_CACHE", "off")
    assert cell_env(ClusterConfig())["HYPERMETA_COMPILE_CACHE"] == "off"


PROBE = """
import collections, os, jax.numpy as jnp
from hypermeta.envs.registry import make_env
jnp.ones((64, 64)).dot(jnp.ones((64, 64))).block_until_ready()
threads = collections.Counter(open(f"/proc/self/task/{t}/comm").read().strip() for t in os.listdir("/proc/self/task"))
print(threads["tf_XLAEigen"], make_env("walker-params").c_stepper.threads)
"""


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads in /proc")
def test_a_process_with_a_cells_environment_uses_its_cpus_only():
    """What a cell's worker runs with: XLA's CPU pool and the C physics (Walker's 2 threads) at 1."""
    env = {k: v for k, v in os.environ.items() if k not in ("PJRT_NPROC", "NPROC", "HYPERMETA_CPU_THREADS")}
    limited = subprocess.run([sys.executable, "-c", PROBE], env={**env, **cell_env(ClusterConfig(cell_cpus=1))},
                             capture_output=True, text=True, timeout=120)
    assert limited.returncode == 0, limited.stderr
    assert limited.stdout.split() == ["1", "1"]
    if (os.cpu_count() or 1) >= 2:  # without the limit: a thread per core, Walker's 2 physics threads
        free = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120)
        assert free.returncode == 0, free.stderr
        assert free.stdout.split() == [str(os.cpu_count()), "2"]


def test_the_remaining_time_is_estimated_from_the_cells_measured_speed(tmp_path):
    sweep = SweepConfig(env="grid-world", methods=("rnn", "rnn-hn"), lr=(1e-3, 3e-4), seeds=(1,), frames=19200)
    cells = plan_cells(sweep, tmp_path, ClusterConfig(ray="local"))
    rnn_done, hn_half = cells[0], cells[1]  # rnn lr 1e-3 finished; rnn-hn lr 1e-3 at update 10 of 20
    assert (rnn_done.name, hn_half.name) == ("grid-world/rnn/lr-0.001_seed-1", "grid-world/rnn-hn/lr-0.001_seed-1")
    assert cluster_estimate(cells, dict.fromkeys((c.name for c in cells), "new"), 2) == ""  # nothing measured
    for cell, rows in ((rnn_done, [(5, 50.0), (10, 1000.0), (15, 1200.0), (20, 1100.0)]), (hn_half, [(5, 40.0), (10, 500.0)])):
        cell.path.mkdir(parents=True)
        pd.DataFrame({"seed": 1, "lr": cell.cfg.lr[0], "update": [u for u, _ in rows], "frames": [u * 960 for u, _ in rows],
                      "frames_per_second": [f for _, f in rows]}).to_csv(cell.path / "metrics.csv", index=False)
    # the first chunk of each cell compiles: not its speed
    assert (measured_speed(rnn_done), measured_speed(hn_half), measured_speed(cells[2])) == (1100.0, 500.0, None)
    states = {c.name: "new" for c in cells} | {rnn_done.name: "finished", hn_half.name: "resume"}
    # left: rnn-hn lr 1e-3 9,600 frames at its 500 frames/s, rnn lr 3e-4 19,200 at 1,100 (its method's
    # speed), rnn-hn lr 3e-4 19,200 at 500: 75 cell-seconds over 2 slots, but the last alone takes 38.4 s
    line = cluster_estimate(cells, states, 2)
    assert line == ("measured on this cluster: 2 cells reported their speed (median 1,100 frames/s per cell); "
                    "the 3 cells left (0.05M frames) take about 38 s with 2 cells at once (compilation not counted)")
    assert "take about 75 s with 1 cells at once" in cluster_estimate(cells, states, 1)  # one after another
    nodes = [{"Alive": True, "Resources": {"CPU": 16.0, "GPU": 2.0}}, {"Alive": False, "Resources": {"CPU": 8.0}},
             {"Alive": True, "Resources": {"CPU": 3.0}}]
    assert cell_slots(nodes, ClusterConfig(cell_cpus=2)) == 8 + 1
    assert cell_slots(nodes, ClusterConfig(cell_cpus=1, cell_gpus=0.5)) == 4
