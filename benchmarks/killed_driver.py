"""A sweep driver killed by SIGKILL, then the same command again (`hypermeta sweep --ray local`).

Not in the default suite: it depends on timing (whether the killed driver's orphaned workers
finish their cells before the second driver looks) and starts its own `--ray local` cluster,
which must not run beside tests/test_ray_sweep.py's. Run it alone, on an idle machine:

    python -m pytest -q -p no:cacheprovider benchmarks/killed_driver.py


The driver is a real subprocess running the command (small networks, a checkpoint every 5
updates: the sweep planned there is the test's). It is killed once a cell has finished and
another has a checkpoint and metrics rows; the same command then finishes the sweep. The killed
driver's `--ray local` cluster outlives it for a while: its workers may finish their cells (then
the next driver finds them finished) or be overtaken by the next driver's attempt of the cell,
which resumes from the last checkpoint and fences the orphan off (tests/test_cluster_cells.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("ray")

from hypermeta.sweeps.cell_task import read_record  # noqa: E402

DRIVER = """
import dataclasses, sys
import hypermeta.sweeps.sweep as sweep
from hypermeta.config import GRUConfig
from hypermeta.cli import main

defaults = sweep.method_defaults

def small(env, method):
    cfg = defaults(env, method)
    return dataclasses.replace(cfg, eval_interval=5, checkpoint_interval=5,
                               model=dataclasses.replace(cfg.model, gru=GRUConfig(16), policy_hidden=(16, 8)))

sweep.method_defaults = small
main(sys.argv[1:])
"""
LRS = ("0.001", "0.0003", "0.0001")
CELLS = [f"grid-world/rnn/lr-{lr}_seed-1" for lr in LRS]
UPDATES = list(range(5, 305, 5))  # the orphaned attempt of the last cell may finish or be overtaken


def _mtimes(path: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in (path / "metrics.csv", path / "summary.json")}


def _argv(out: Path) -> list[str]:
    return [sys.executable, "-c", DRIVER, "sweep", "--env", "grid-world", "--methods", "rnn", "--lr", *LRS,
            "--seeds", "1", "--frames", str(UPDATES[-1] * 960), "--out", str(out), "--ray", "local"]


def test_the_same_sweep_undisturbed(tmp_path):
    """The comparison: the same command, never killed (a fresh compilation cache as well)."""
    env = {**os.environ, "HYPERMETA_COMPILE_CACHE": str(tmp_path / "cache")}
    t0 = time.time()
    proc = subprocess.run(_argv(tmp_path / "sweep"), capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    for cell in CELLS:
        assert pd.read_csv(tmp_path / "sweep" / cell / "metrics.csv")["update"].tolist() == UPDATES, cell
    print(f"\nundisturbed sweep: {time.time() - t0:.1f} s")


def test_a_killed_driver_then_the_same_command_finishes_the_sweep(tmp_path):
    out = tmp_path / "sweep"
    argv = _argv(out)
    # a compilation cache of the test's own: the second driver's workers load the first one's programs
    env = {**os.environ, "HYPERMETA_COMPILE_CACHE": str(tmp_path / "cache")}
    log = open(tmp_path / "first.log", "w")
    t0 = time.time()
    first = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        finished: list[str] = []
        running = ""
        while first.poll() is None and time.time() - t0 < 300:
            finished = [c for c in CELLS if (out / c / "summary.json").exists()]
            running = next((c for c in CELLS if c not in finished and (out / c / "checkpoints" / "5").is_dir()
                            and (out / c / "metrics.csv").exists()), "")
            if finished and running:
                os.kill(first.pid, signal.SIGKILL)  # the driver alone, as the OOM killer would
                break
            time.sleep(0.1)
        first.wait(timeout=60)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
        log.close()
    killed_after = time.time() - t0
    assert first.returncode == -signal.SIGKILL, (tmp_path / "first.log").read_text()[-2000:]
    assert finished and running, "the sweep ended before a cell finished while another was mid-way"
    before = {c: (_mtimes(out / c), len(read_record(out, c)["attempts"])) for c in finished}

    t1 = time.time()
    try:
        second = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600)
    finally:  # whatever of the first driver's cluster outlived it (its own session)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(first.pid, signal.SIGKILL)
    again = time.time() - t1
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-2000:]
    if "nothing to train" not in second.stdout:  # the orphaned workers had not finished every cell
        assert "took over" in second.stdout  # the dead driver's lease
    for cell in CELLS:  # every evaluation exactly once, in order
        assert pd.read_csv(out / cell / "metrics.csv")["update"].tolist() == UPDATES, cell
        assert (out / cell / "summary.json").exists()
    # finished cells were not trained again; the interrupted one resumed from its checkpoint
    assert {c: (_mtimes(out / c), len(read_record(out, c)["attempts"])) for c in finished} == before
    session = json.loads((out / "sweep-status.json").read_text())["session"]
    attempts = read_record(out, running)["attempts"]
    seen = f"{running}: attempts (session, start update) {[(a['session'], a['start_update']) for a in attempts]}, " \
           f"this session {session}"
    print("\n" + seen)
    assert [a["start_update"] for a in attempts].count(0) == 1, seen  # never started over
    assert all(a["start_update"] >= 5 for a in attempts if a["session"] == session), seen  # resumed, if not finished
    print(f"killed driver: {killed_after:.1f} s until SIGKILL, {again:.1f} s for the same command again")
