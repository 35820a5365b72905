"""Divergence: a run whose losses or parameters become non-finite is marked, said on the
terminal, kept out of the report's best-lr selection, and does not disturb the other runs.

One real tiny training of two runs in one program (`--parallel-runs 2`: vmapped side by
side, as on a GPU), seed 1 at lr 1e30 and at 3e-4, Grid-World, RNN, 6 updates of 4 envs
x 15 steps, evaluations and checkpoints every 2 updates. Adam at lr 1e30 makes the
parameters ~1e30 after the first minibatch step, so the losses are NaN within update 1,
which the chunk ending at update 2 reports. The healthy run is compared with the same run
trained alone. A module-wide JAX compilation cache lets the resumed run reuse the program.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import shutil
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from hypermeta.cli import main
from hypermeta.rundir import RunDir

COMMON = [
    "train", "--env", "grid-world", "--method", "rnn",
    "--model.gru.size", "16", "--model.policy-state-embed", "8", "--model.policy-hidden", "16", "8",
    "--ppo.num-envs", "4", "--ppo.num-steps", "15", "--ppo.minibatches", "2",
    "--frames", "360", "--eval-interval", "2", "--checkpoint-interval", "2", "--eval-trials", "4",
    "--seeds", "1", "--parallel-runs", "2",
]
BAD, GOOD = 1e30, 3e-4
DIVERGED_AT = 2  # NaN within update 1; the resolution is a chunk of --eval-interval 2 updates
LOSSES = ["policy_loss", "value_loss", "entropy"]
TRAINED = ["meta_episode_return", "episode_1_return", "episode_2_return", "episode_3_return", "episode_4_return",
           "policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction", "train_reward"]
LINE = f"run seed 1 lr 1e+30 diverged at update {DIVERGED_AT} (non-finite policy_loss"


def train(argv: list[str]) -> str:
    """stdout of `hypermeta ARGV` run in-process (rich's console writes to sys.stdout)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            main(argv)
        except SystemExit as e:
            pytest.fail(f"hypermeta exited with {e.code}")
    return out.getvalue()


@pytest.fixture(scope="module")
def diverging(tmp_path_factory, compilation_cache) -> tuple[Path, str]:
    """(run directory, terminal output) of the two-run training where lr 1e30 diverges."""
    out = tmp_path_factory.mktemp("runs") / "diverging"
    printed = train([*COMMON, "--lr", str(BAD), str(GOOD), "--out", str(out)])
    return out, printed


@pytest.fixture(scope="module")
def alone(tmp_path_factory, compilation_cache) -> Path:
    out = tmp_path_factory.mktemp("runs") / "alone"
    train([*COMMON, "--lr", str(GOOD), "--out", str(out)])
    return out


def metrics(path: Path) -> pd.DataFrame:
    return pd.read_csv(path / "metrics.csv").sort_values(["lr", "update"], kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------------- training


def test_diverged_run_is_marked_with_its_update(diverging):
    out, _ = diverging
    records = json.loads((out / "diverged.json").read_text())
    assert list(records) == ["seed=1,lr=1e+30"]  # only the diverging run
    record = records["seed=1,lr=1e+30"]
    assert record["update"] == DIVERGED_AT
    assert record["non_finite"][:3] == LOSSES and record["non_finite"][-1] == "parameters"

    summary = json.loads((out / "summary.json").read_text())
    assert summary["diverged"] == {"seed=1,lr=1e+30": record}
    assert summary["final_meta_episode_return"]["seed=1,lr=1e+30"] is None  # not a learning result
    assert math.isfinite(summary["final_meta_episode_return"]["seed=1,lr=0.0003"])

    df = metrics(out)
    bad, good = df[df["lr"] == BAD], df[df["lr"] == GOOD]
    assert list(bad["update"]) == list(good["update"]) == [2, 4, 6]  # the diverged run keeps its rows
    first_nan = bad.loc[~np.isfinite(bad[LOSSES]).all(axis=1), "update"].min()
    assert first_nan == DIVERGED_AT
    assert list(bad["diverged"]) == [int(u >= DIVERGED_AT) for u in bad["update"]]
    assert (good["diverged"] == 0).all()


def test_terminal_says_so_in_one_line_and_done_does_not_hide_it(diverging):
    _, printed = diverging
    lines = printed.splitlines()
    hits = [ln for ln in lines if ln.startswith("run seed")]
    assert len(hits) == 1, printed  # once, when first detected, on one unwrapped line
    assert hits[0].startswith(LINE) and hits[0].endswith("; its returns are not a learning result"), hits[0]
    closing = [i for i, ln in enumerate(lines) if ln.startswith("1 of 2 runs diverged (seed 1 lr 1e+30 at update 2)")]
    done = [i for i, ln in enumerate(lines) if ln.startswith("done:")]
    assert closing and done and closing[0] < done[0], printed


def test_healthy_run_is_finite_and_equals_the_run_trained_alone(diverging, alone):
    out, _ = diverging
    good = metrics(out)
    good = good[good["lr"] == GOOD].reset_index(drop=True)
    assert np.isfinite(good[TRAINED].to_numpy()).all()
    single = metrics(alone)
    assert (single["diverged"] == 0).all() and not (alone / "diverged.json").exists()
    assert json.loads((alone / "summary.json").read_text())["diverged"] == {}
    pd.testing.assert_frame_equal(good[["seed", "lr", "update"]], single[["seed", "lr", "update"]])
    # A program of 2 runs and one of 1 vectorise differently: last-bit differences only.
    pd.testing.assert_frame_equal(good[TRAINED], single[TRAINED], rtol=1e-5, atol=1e-6)


def test_resumed_run_keeps_its_marker(diverging, tmp_path):
    """Interrupted after the checkpoint at update 4, then resumed: still diverged at update 2."""
    source, _ = diverging
    run = tmp_path / "resumed"
    shutil.copytree(source, run)
    (run / "summary.json").unlink()
    shutil.rmtree(run / "checkpoints" / "6")
    metrics(source)[lambda d: d["update"] <= 4].to_csv(run / "metrics.csv", index=False)
    printed = train(["train", "--resume", str(run)])
    assert any(ln.startswith("run seed 1 lr 1e+30 diverged at update 2, before this resume") for ln in printed.splitlines())
    assert json.loads((run / "diverged.json").read_text()) == json.loads((source / "diverged.json").read_text())
    assert json.loads((run / "summary.json").read_text())["diverged"] == json.loads((source / "diverged.json").read_text())
    pd.testing.assert_frame_equal(metrics(run)[["lr", "update", "diverged"]], metrics(source)[["lr", "update", "diverged"]])


def test_report_flags_the_diverged_run_and_picks_the_healthy_lr(diverging, tmp_path, capsys):
    from hypermeta.analysis.report import write_report

    out, _ = diverging
    write_report([out], tmp_path / "report")
    assert "1 diverged run(s)" in capsys.readouterr().out
    text = (tmp_path / "report" / "report.md").read_text()
    assert "## Diverged runs" in text and "| grid-world | RNN | 1e+30 | 1 | 2 | 120 |" in text
    assert "| grid-world | RNN | 0.0003 | 1 | 360 |" in text  # the best lr is the healthy one
    every_lr = text.split("## Every learning rate")[1].splitlines()
    flagged = next(ln for ln in every_lr if ln.startswith("| grid-world | RNN | 1e+30 | 1 | "))
    assert flagged.endswith("| 1 of 1 seeds (seed 1 at update 2); not eligible |"), flagged
    healthy = next(ln for ln in every_lr if ln.startswith("| grid-world | RNN | 0.0003 | 1 | "))
    assert healthy.endswith("|  |"), healthy
    scores = pd.read_csv(tmp_path / "report" / "scores.csv")
    assert dict(zip(scores["lr"], scores["diverged"], strict=True)) == {GOOD: False, BAD: True}


# --------------------------------------------------------------------------- pieces, no training


def test_non_finite_names_losses_first_then_parameters():
    from hypermeta.training.loop import non_finite, params_finite

    params = {"w": jnp.array([[1.0, 2.0], [1.0, jnp.nan]]), "b": jnp.array([[0.0], [jnp.inf]]),
              "step": jnp.array([1, 2])}
    finite = np.asarray(params_finite(params))
    assert finite.tolist() == [True, False]
    m = {"meta_episode_return": np.array([1.0, np.nan]), "value_loss": np.array([0.5, np.nan]),
         "policy_loss": np.array([0.1, np.inf]), "episode_returns": np.array([[1.0, 0.0], [0.0, 0.0]])}
    assert non_finite(m, finite) == [[], ["policy_loss", "value_loss", "meta_episode_return", "parameters"]]


def test_best_lr_excludes_an_lr_that_diverged_in_one_seed():
    from hypermeta.analysis import stats

    rows = []
    for lr, seed, ret, diverged in [(1e-3, 1, 10.0, 0), (1e-3, 2, 9.0, 1), (3e-4, 1, 5.0, 0), (3e-4, 2, 5.0, 0)]:
        for frames in (100, 200):
            rows.append({"env": "e", "method": "m", "lr": lr, "seed": seed, "frames": frames, "update": frames // 100,
                         "meta_episode_return": ret, "diverged": bool(diverged and frames == 200)})
    df = pd.DataFrame(rows)
    assert stats.best_lrs(df.drop(columns="diverged"))["lr"].item() == 1e-3  # what it would pick blind
    assert stats.best_lrs(df)["lr"].item() == 3e-4
    assert set(stats.select_best(df)["lr"]) == {3e-4}
    d = stats.diverged_runs(df)
    assert d[["lr", "seed", "update", "frames"]].values.tolist() == [[1e-3, 2, 2, 200]]
    assert stats.run_scores(df)["diverged"].tolist() == [False, False, False, True]


def test_rundir_adds_the_diverged_column_to_an_older_metrics_file_and_truncates_records(tmp_path):
    run = RunDir(tmp_path)
    run.append_metrics([{"seed": 1, "lr": 0.1, "update": 1, "meta_episode_return": 2.0}])
    run.append_metrics([{"seed": 1, "lr": 0.1, "update": 2, "meta_episode_return": 3.0, "diverged": 1}])
    df = pd.read_csv(tmp_path / "metrics.csv")
    assert list(df.columns) == ["seed", "lr", "update", "meta_episode_return", "diverged"]
    assert df["diverged"].isna().tolist() == [True, False] and df["diverged"].iloc[1] == 1
    run.write_diverged({"seed=1,lr=0.1": {"update": 2, "non_finite": ["policy_loss"]},
                        "seed=2,lr=0.1": {"update": 6, "non_finite": ["parameters"]}})
    run.truncate_diverged(4)
    assert list(run.read_diverged()) == ["seed=1,lr=0.1"]
    run.truncate_diverged(0)
    assert run.read_diverged() == {} and not run.diverged_path.exists()
