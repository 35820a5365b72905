"""`hypermeta sweep`, `reproduce` and `report` on a small real sweep.

The sweep trains RNN and RNN+S with the paper's Grid-World PPO settings (16 envs x 60 steps)
for 10 updates (2 lrs x 2 seeds, evaluations every 5 updates, checkpoints every 5), once per
module. Its networks are small (GRU 16, policy 16 x 8; the policy's state embedding keeps
the family's size, which the planning tests read): what is tested is the sweep, the report
and resuming, not the paper's sizes. The session's JAX compilation cache (conftest.py) lets
the tests that train a method again load its compiled programs instead of compiling them.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hypermeta.analysis import stats
from hypermeta.analysis.report import write_report
from hypermeta.analysis.runs import load_runs
from hypermeta.cli import main
from hypermeta.errors import UsageError
from hypermeta.sweeps.sweep import SweepConfig, run_sweep

SWEEP = SweepConfig(env="grid-world", methods=("rnn", "RNN+S"), lr=(1e-3, 3e-4), seeds=(1, 2), frames=9600,
                    grad_info=True)


@pytest.fixture(scope="module", autouse=True)
def checkpoint_every_5_updates():
    """Grid-World's family settings with checkpoints every 5 updates and small networks, for
    every sweep here."""
    import dataclasses

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


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sweep")
    run_sweep(SWEEP, out, show_progress=False)
    return out


def run_cli(argv, capsys):
    try:
        main(argv)
        code = 0
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def snapshot(path: Path) -> dict[str, int]:
    return {str(p.relative_to(path)): p.stat().st_mtime_ns for p in sorted(path.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------- sweep


def test_sweep_writes_one_run_dir_per_method(sweep_dir):
    for method in ("rnn", "rnn-s"):  # the paper's spelling is stored canonically
        run = sweep_dir / "grid-world" / method
        cfg = json.loads((run / "config.json").read_text())
        assert cfg["method"] == method and cfg["lr"] == [1e-3, 3e-4] and cfg["seeds"] == [1, 2]
        assert cfg["grad_info"] is True and (run / "summary.json").exists()
        rows = pd.read_csv(run / "metrics.csv")
        assert len(rows) == 4 * 2  # 4 runs x evaluations at updates 5 and 10
        assert rows[["latent_grad_norm", "state_grad_norm"]].notna().all().all()
        assert (rows["state_grad_norm"] == 0).all() == (method == "rnn")  # RNN's policy never sees the state


def test_sweep_again_skips_finished_methods(sweep_dir, capsys):
    before = snapshot(sweep_dir)
    run_sweep(SWEEP, sweep_dir, show_progress=False)
    assert "rnn: finished, skipped" in capsys.readouterr().out
    assert snapshot(sweep_dir) == before


def test_sweep_resumes_an_interrupted_method(sweep_dir, tmp_path, capsys):
    out = tmp_path / "copy"
    shutil.copytree(sweep_dir, out)
    run = out / "grid-world" / "rnn-s"
    reference = pd.read_csv(run / "metrics.csv")
    # as an interruption after update 5 leaves it: no summary, checkpoint 5 only, rows up to 5
    (run / "summary.json").unlink()
    shutil.rmtree(run / "checkpoints" / "10")
    assert (run / "checkpoints" / "5").is_dir()
    reference[reference["update"] <= 5].to_csv(run / "metrics.csv", index=False)
    untouched = snapshot(out / "grid-world" / "rnn")
    run_sweep(SWEEP, out, show_progress=False)
    printed = capsys.readouterr().out
    assert "rnn: finished, skipped" in printed and "rnn-s: resuming" in printed
    assert snapshot(out / "grid-world" / "rnn") == untouched
    assert (run / "summary.json").exists()
    key = ["seed", "lr", "update"]
    resumed = pd.read_csv(run / "metrics.csv").sort_values(key).reset_index(drop=True)
    reference = reference.sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(resumed[key], reference[key])
    # continued from checkpoint 5: updates 6-10 reproduce the uninterrupted sweep
    values = ["meta_episode_return", "policy_loss", "value_loss", "entropy", "latent_grad_norm"]
    pd.testing.assert_frame_equal(resumed[values], reference[values], rtol=1e-5, atol=1e-6)


def test_sweep_stopped_during_a_methods_last_chunk_stops_the_sweep(tmp_path, monkeypatch, sigint_enabled):
    """Ctrl-C while the first method's last chunk runs: that method finishes, the sweep stops
    before the next one and says how to continue."""
    import os
    import signal

    from hypermeta.training.learner import Learner

    compile_chunk = Learner.compile_chunk

    def interrupting(self, parallel_runs=0):
        chunk = compile_chunk(self, parallel_runs)

        def run(states, n):
            result = chunk(states, n)
            if int(result[0].update.max()) == 10:  # the last chunk of 10 updates
                os.kill(os.getpid(), signal.SIGINT)
            return result

        return run

    monkeypatch.setattr(Learner, "compile_chunk", interrupting)
    with pytest.raises(KeyboardInterrupt, match="run the same command again"):
        run_sweep(SWEEP, tmp_path, show_progress=False)
    assert (tmp_path / "grid-world" / "rnn" / "summary.json").exists()
    assert not (tmp_path / "grid-world" / "rnn-s").exists()


def test_report_uses_a_common_budget_and_ignores_a_torn_last_line(sweep_dir, tmp_path):
    """RNN+S stopped after update 5 (its last line half written): both methods are compared at
    4,800 frames, and the torn line is not read."""
    out = tmp_path / "copy"
    shutil.copytree(sweep_dir, out)
    run = out / "grid-world" / "rnn-s"
    (run / "summary.json").unlink()
    lines = (run / "metrics.csv").read_text().splitlines(keepends=True)
    kept = [lines[0]] + [ln for ln in lines[1:] if int(ln.split(",")[2]) <= 5]
    torn = next(ln for ln in lines[1:] if int(ln.split(",")[2]) == 10)
    (run / "metrics.csv").write_text("".join(kept) + torn[: torn.index(",", torn.index(",", 30) + 1) + 3])
    assert len(load_runs([run])) == len(kept) - 1
    write_report([out], tmp_path / "report")
    text = (tmp_path / "report" / "report.md").read_text()
    assert "grid-world at 4,800 frames" in text and "Unfinished runs" in text and "rnn-s" in text
    assert "| grid-world | RNN | " in text and " | 4,800 |" in text and " | 9,600 |" not in text
    scores = pd.read_csv(tmp_path / "report" / "scores.csv")
    direct = load_runs([out])
    direct = direct[direct["frames"] <= 4800]
    expected = stats.run_scores(direct, "average").reset_index(drop=True)
    assert len(expected) == 8  # 2 methods x 2 lrs x 2 seeds
    pd.testing.assert_frame_equal(scores[list(expected.columns)], expected, check_dtype=False, rtol=1e-9)


def test_report_with_grad_info_for_some_methods_only(sweep_dir, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(sweep_dir, out)
    metrics = out / "grid-world" / "rnn-s" / "metrics.csv"
    pd.read_csv(metrics).drop(columns=["latent_grad_norm", "state_grad_norm", "latent_norm", "state_norm"]).to_csv(
        metrics, index=False)
    files = {p.name for p in write_report([out], tmp_path / "report")}
    assert "latent_grads.png" in files and "curves.png" in files


def test_sweep_refuses_a_directory_holding_another_run(sweep_dir, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(sweep_dir, out)
    with pytest.raises(UsageError, match=r"frames=9600.*frames=19200.*another --out"):
        run_sweep(SweepConfig(**{**SWEEP.__dict__, "frames": 19200}), out, show_progress=False)


@pytest.mark.parametrize("methods, fragment", [
    (("rnn", "ti-pp-pp"), "unknown method 'ti-pp-pp'"),
    (("rnn", "RNN"), "more than once"),
    (("lstm",), "unknown method 'lstm'"),
])
def test_sweep_checks_methods_before_training(tmp_path, capsys, methods, fragment):
    code, _, err = run_cli(["sweep", "--methods", *methods, "--out", str(tmp_path / "s")], capsys)
    assert code == 2 and fragment in err and "Traceback" not in err
    assert not (tmp_path / "s").exists()


# --------------------------------------------------------------------------- report


def test_report_from_small_sweep(sweep_dir, tmp_path):
    out = tmp_path / "report"
    files = write_report([sweep_dir], out, reach=(-1000.0, 1000.0))
    names = {p.name for p in files}
    for stem in ("curves", "bars", "latent_grads", "state_grads"):
        assert {f"{stem}.png", f"{stem}.pdf"} <= names, stem
        assert (out / f"{stem}.png").read_bytes().startswith(b"\x89PNG")
        assert (out / f"{stem}.pdf").read_bytes().startswith(b"%PDF")
    text = (out / "report.md").read_text()
    df = load_runs([sweep_dir])
    best = stats.best_lrs(df, "average")
    for _, b in best.iterrows():
        label = {"rnn": "RNN", "rnn-s": "RNN+S"}[b["method"]]
        assert f"| grid-world | {label} | {b['lr']:g} | 2 | 9,600 |" in text
        # sample efficiency: every curve starts above -1000 (at its first evaluation); none reaches 1000
        first = int(df[(df["method"] == b["method"]) & (df["lr"] == b["lr"])]["frames"].min())
        assert f"| grid-world | {label} | {b['lr']:g} | -1000 | {first:,} | 2 of 2 | {first:,}, {first:,} |" in text
        assert f"| grid-world | {label} | {b['lr']:g} | 1000 | not reached | 0 of 2 | not reached, not reached |" in text
    assert "Aggregate" in text


def _noisy_curves(seeds: int = 2, points: int = 40) -> pd.DataFrame:
    """One configuration's evaluations: a rising trend plus noise of a few points per seed."""
    rng = np.random.default_rng(0)
    return pd.DataFrame([{"env": "grid-world", "method": "rnn-hn", "state_embed": 25, "lr": 1e-3, "seed": s,
                          "update": 5 * (i + 1), "frames": 4800 * (i + 1), "diverged": False,
                          "meta_episode_return": i + 4 * rng.normal()} for s in range(seeds) for i in range(points)])


def _lines(ax):
    """(solid labelled lines, faint unlabelled lines) of an axis: label -> y, and a list of y."""
    labelled = {ln.get_label(): ln.get_ydata() for ln in ax.lines if not ln.get_label().startswith("_")}
    faint = [ln.get_ydata() for ln in ax.lines if ln.get_alpha() is not None and ln.get_alpha() < 1]
    return labelled, faint


def test_run_curves_draw_the_papers_smoothing_over_the_faint_evaluations():
    """curve.png: the labelled line is the mean of the seeds' smoothed curves; the raw mean
    over seeds is drawn faintly behind it."""
    from hypermeta.analysis.plot import run_figure
    from hypermeta.config import TrainConfig

    df = _noisy_curves()
    rows = df.astype({"lr": str, "seed": str}).assign(diverged="0").to_dict("records")  # as metrics.csv reads
    fig = run_figure(rows, TrainConfig())
    labelled, faint = _lines(fig.axes[0])
    raw = df.pivot_table(index="frames", columns="seed", values="meta_episode_return")
    smoothed = np.mean([stats.smooth(raw[s].to_numpy()) for s in raw.columns], axis=0)
    np.testing.assert_allclose(labelled["lr 0.001 (2 seeds)"], smoothed)
    assert len(faint) == 1
    np.testing.assert_allclose(faint[0], raw.mean(axis=1))


def test_report_curves_draw_the_papers_smoothing_over_the_faint_evaluations():
    """The report's curves: the smoothed mean with its CI (`stats.curve_ci`) over the faint raw mean."""
    from hypermeta.analysis.report import plot_curves

    df = _noisy_curves()
    fig = plot_curves(df, "meta_episode_return", "return", "frames", {"rnn-hn": "C0"}, references=False)
    labelled, faint = _lines(fig.axes[0])
    np.testing.assert_allclose(next(iter(labelled.values())), stats.curve_ci(df)["mean"])
    assert len(faint) == 1
    np.testing.assert_allclose(faint[0], df.groupby("frames")["meta_episode_return"].mean())


def test_report_merges_run_directories_from_two_machines(sweep_dir, tmp_path):
    """Seed 1 trained on one machine, seed 2 on another: the merged report equals the whole sweep's."""
    for seed in (1, 2):
        run = tmp_path / f"machine{seed}" / "rnn"
        run.mkdir(parents=True)
        cfg = json.loads((sweep_dir / "grid-world" / "rnn" / "config.json").read_text())
        (run / "config.json").write_text(json.dumps({**cfg, "seeds": [seed]}))
        rows = pd.read_csv(sweep_dir / "grid-world" / "rnn" / "metrics.csv")
        rows[rows["seed"] == seed].to_csv(run / "metrics.csv", index=False)
    merged = load_runs([tmp_path / "machine1", tmp_path / "machine2"]).drop(columns=["run_dir", "finished"])
    whole = load_runs([sweep_dir / "grid-world" / "rnn"]).drop(columns=["run_dir", "finished"])
    pd.testing.assert_frame_equal(merged, whole)
    a = write_report([tmp_path / "machine1", tmp_path / "machine2"], tmp_path / "ra")
    b = write_report([sweep_dir / "grid-world" / "rnn"], tmp_path / "rb")
    table = lambda d: (d / "report.md").read_text().split("## Aggregate")[0].split("\n", 2)[2]  # noqa: E731
    assert "Unfinished runs" in (tmp_path / "ra" / "report.md").read_text()  # the copies have no summary.json
    strip = lambda t: re.sub(r"Unfinished runs[^\n]*\n\n", "", t)  # noqa: E731
    assert strip(table(tmp_path / "ra")) == strip(table(tmp_path / "rb")).replace("from 1 run directories", "from 2 run directories")
    assert a and b


def test_report_refuses_the_same_run_twice(sweep_dir, tmp_path):
    shutil.copytree(sweep_dir / "grid-world" / "rnn", tmp_path / "copy")
    with pytest.raises(UsageError, match="more than one directory"):
        load_runs([sweep_dir, tmp_path / "copy"])


def test_report_cli_errors(tmp_path, capsys):
    code, _, err = run_cli(["report", str(tmp_path / "nowhere")], capsys)
    assert code == 2 and "no such directory" in err
    code, _, err = run_cli(["report", str(tmp_path)], capsys)
    assert code == 2 and "no run directories" in err
    code, _, err = run_cli(["report", str(tmp_path), "--reach", "nan"], capsys)
    assert code == 2 and "--reach nan" in err


# --------------------------------------------------------------------------- reproduce


def test_reproduce_lists_figures_with_budgets(capsys):
    code, out, _ = run_cli(["reproduce"], capsys)
    assert code == 0
    assert "fig9" in out and "4M frames x 135 runs" in out and "h on a 2-core CPU" in out
    assert "fig5" in out and "fig6" in out and "fig16" in out and "needs" not in out  # every figure runs


def test_mujoco_figures_estimate_cpu_hours_from_their_own_speed():
    from hypermeta.sweeps.presets import ENV_FPS, FIGURES, MEASURED_FPS, describe

    fig10 = FIGURES["fig10"]  # rnn, rnn-s, rnn-hn on the four MuJoCo tasks, 75M frames
    runs_per_method = 5 * 3
    expected = 0.0
    for env in fig10.envs:
        fps = ENV_FPS["cpu"][env]
        assert fps["rnn-hn"] < MEASURED_FPS["cpu"]["rnn-hn"]  # slower than on Grid-World
        expected += sum(runs_per_method * 75e6 / fps.get(m, min(fps.values())) for m in fig10.methods)
    assert fig10.hours("cpu") == pytest.approx(expected / 3600)
    assert fig10.hours("gpu") is None and "not measured on one H100" in describe(fig10)
    assert FIGURES["fig9"].hours("gpu") is not None  # grid-worlds were measured there


def test_figure_with_a_missing_environment_says_so(capsys, monkeypatch):
    from hypermeta.sweeps.presets import FIGURES, Figure

    monkeypatch.setitem(FIGURES, "fig99", Figure("fig99", "a later paper", ("grid-world", "mars"), ("rnn-hn",), 10))
    code, out, _ = run_cli(["reproduce"], capsys)
    assert code == 0 and "fig99" in out and "needs mars" in out
    code, _, err = run_cli(["reproduce", "fig99"], capsys)
    assert code == 2 and "needs mars, not implemented yet" in err and "fig9" in err and "fig16" in err


@pytest.mark.parametrize("argv, fragments", [
    (["reproduce", "fig98"], ["unknown figure 'fig98'", "fig9", "fig11"]),
    (["reproduce", "fig9", "--envs", "cheetah-dir"], ["--envs cheetah-dir", "grid-world-show"]),
])
def test_reproduce_errors(capsys, argv, fragments):
    code, _, err = run_cli(argv, capsys)
    assert code == 2 and "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, (fragment, err)


def test_reproduce_runs_each_environment_of_the_figure_then_reports(tmp_path, capsys, monkeypatch):
    """fig11 = one sweep per environment with the figure's methods and --grad-info, then one report."""
    import hypermeta.analysis.report as report
    import hypermeta.sweeps.sweep as sweep

    sweeps, reports = [], []
    monkeypatch.setattr(sweep, "run_sweep", lambda cfg, out, show_progress=True: sweeps.append((cfg, out)))
    monkeypatch.setattr(report, "write_report", lambda paths, out, title: reports.append((paths, out, title)) or [])
    code, out, err = run_cli(["reproduce", "fig11", "--frames", "9600", "--lr", "1e-3", "--seeds", "1", "2",
                              "--out", str(tmp_path)], capsys)
    assert code == 0, err
    assert [c.env for c, _ in sweeps] == ["grid-world"]
    cfg, where = sweeps[0]
    assert cfg.methods == ("rnn", "rnn-s", "rnn-hn", "rnn-hn-kaiming") and cfg.grad_info
    assert cfg.frames == 9600 and cfg.lr == (1e-3,) and cfg.seeds == (1, 2) and where == tmp_path
    assert reports == [([tmp_path], tmp_path / "report", reports[0][2])] and "fig11" in reports[0][2]
    assert "h on a 2-core CPU" in out


def test_reproduce_fig7_uses_the_four_mc_ls_seeds(tmp_path, capsys, monkeypatch):
    import hypermeta.analysis.report as report
    import hypermeta.sweeps.sweep as sweep

    sweeps = []
    monkeypatch.setattr(sweep, "run_sweep", lambda cfg, out, show_progress=True: sweeps.append(cfg))
    monkeypatch.setattr(report, "write_report", lambda paths, out, title: [])
    code, out, err = run_cli(["reproduce", "fig7", "--frames", "12800", "--lr", "1e-3", "--out", str(tmp_path)], capsys)
    assert code == 0, err
    assert [(c.env, c.methods, c.seeds) for c in sweeps] == [("mc-ls", ("rnn-hn", "vi-hn"), (73, 20, 3, 99))]
    assert "60M frames x 40 runs" in out and "[ready]" in out  # 2 methods x 5 lrs x 4 seeds


# --------------------------------------------------------------------------- per-environment budgets

PAPER_FRAMES = {  # frames per run in the paper (the authors' experiment_sets/all_envs.py num_frames)
    "grid-world": 4_000_000, "grid-world-show": 4_000_000, "grid-world-dense": 4_000_000,
    "cheetah-dir": 75_000_000, "cheetah-vel": 75_000_000, "ant-dir": 75_000_000, "walker-params": 75_000_000,
    "mc-ls": 60_000_000, "ml10": 100_000_000,
}


def test_every_preset_trains_each_environment_for_the_papers_budget():
    from hypermeta.sweeps.presets import FIGURES

    for figure in FIGURES.values():
        assert figure.budgets() == {env: PAPER_FRAMES[env] for env in figure.envs}, figure.name
    assert FIGURES["fig12"].budgets() == {"grid-world": 4_000_000, "walker-params": 75_000_000}  # Walker: not 4M


def test_reproduce_trains_and_estimates_each_environment_at_its_own_budget(tmp_path, capsys, monkeypatch):
    """fig12 = Grid-World at 4M frames and Walker at 75M, in the sweeps, the hour estimate and
    the listing; --frames N puts every environment at N."""
    import hypermeta.analysis.report as report
    import hypermeta.sweeps.sweep as sweep
    from hypermeta.sweeps.presets import ENV_FPS, FIGURES, MEASURED_FPS

    sweeps = []
    monkeypatch.setattr(sweep, "run_sweep", lambda cfg, out, show_progress=True: sweeps.append(cfg))
    monkeypatch.setattr(report, "write_report", lambda paths, out, title: [])
    code, out, err = run_cli(["reproduce", "fig12", "--lr", "1e-3", "--out", str(tmp_path)], capsys)
    assert code == 0, err
    assert [(c.env, c.frames) for c in sweeps] == [("grid-world", 4_000_000), ("walker-params", 75_000_000)]
    assert "grid-world 4M, walker-params 75M frames x 180 runs" in out  # the listing line
    assert "grid-world 4M, walker-params 75M frames x 1 lrs x 3 seeds per method" in out  # this run
    fig12 = FIGURES["fig12"]
    expected = 0.0
    for env, fps in (("grid-world", MEASURED_FPS["cpu"]), ("walker-params", ENV_FPS["cpu"]["walker-params"])):
        expected += sum(3 * PAPER_FRAMES[env] / fps.get(m, min(fps.values())) for m in fig12.methods)
    assert fig12.hours("cpu", lrs=1) == pytest.approx(expected / 3600)
    sweeps.clear()
    code, out, err = run_cli(["reproduce", "fig12", "--frames", "9600", "--lr", "1e-3", "--out", str(tmp_path)], capsys)
    assert code == 0, err
    assert [(c.env, c.frames) for c in sweeps] == [("grid-world", 9600), ("walker-params", 9600)]
    assert "9,600 frames x 1 lrs" in out


# --------------------------------------------------------------------------- policy state-embedding axis


def test_state_embedding_sweep_has_one_run_directory_per_size(tmp_path):
    """--state-embeds 5 25 125: a directory per size for every method whose policy reads the
    state (the method's default size keeps the plain name), RNN once; without it, unchanged."""
    import dataclasses

    from hypermeta.sweeps.sweep import SWEEP_LRS, plan

    base = SweepConfig(env="grid-world", methods=("rnn", "rnn-s", "RNN+HN", "vi-hn"), frames=9600)
    planned = plan(dataclasses.replace(base, state_embeds=(5, 25, 125)), tmp_path)
    got = {path.relative_to(tmp_path).as_posix(): cfg.model.policy_state_embed for cfg, path in planned}
    assert got == {
        "grid-world/rnn": 25,  # RNN's policy has no state embedding: one run directory, the family's value
        "grid-world/rnn-s_state-embed-5": 5, "grid-world/rnn-s": 25, "grid-world/rnn-s_state-embed-125": 125,
        "grid-world/rnn-hn_state-embed-5": 5, "grid-world/rnn-hn": 25, "grid-world/rnn-hn_state-embed-125": 125,
        # VI+HN's default is 256, so each of these sizes is named
        "grid-world/vi-hn_state-embed-5": 5, "grid-world/vi-hn_state-embed-25": 25,
        "grid-world/vi-hn_state-embed-125": 125,
    }
    for cfg, path in planned:  # only the size differs from the method's default configuration
        assert cfg.frames == 9600 and cfg.lr == SWEEP_LRS and cfg.method == path.name.split("_")[0]
    default = {path.relative_to(tmp_path).as_posix(): cfg.model.policy_state_embed for cfg, path in plan(base, tmp_path)}
    assert default == {"grid-world/rnn": 25, "grid-world/rnn-s": 25, "grid-world/rnn-hn": 25, "grid-world/vi-hn": 256}


def test_state_embedding_sweep_reuses_the_default_sweep(tmp_path, capsys, monkeypatch):
    """`hypermeta sweep`, then the same with --state-embeds 5 25: only the size-5 run trains."""
    import hypermeta.training.loop as loop

    trained = []

    def fake_train(cfg, path, resume=False, show_progress=True):  # a finished run directory
        path.mkdir(parents=True)
        (path / "config.json").write_text(json.dumps(cfg.to_dict()))
        (path / "summary.json").write_text("{}")
        trained.append((path.name, cfg.model.policy_state_embed))

    monkeypatch.setattr(loop, "train", fake_train)
    argv = ["sweep", "--methods", "rnn", "rnn-hn", "--frames", "9600", "--lr", "1e-3", "--seeds", "1",
            "--out", str(tmp_path)]
    code, _, err = run_cli(argv, capsys)
    assert code == 0, err
    assert trained == [("rnn", 25), ("rnn-hn", 25)]
    code, out, err = run_cli([*argv, "--state-embeds", "5", "25"], capsys)
    assert code == 0, err
    assert trained[2:] == [("rnn-hn_state-embed-5", 5)]
    assert "rnn: finished, skipped" in out and "rnn-hn: finished, skipped" in out
    assert str(tmp_path / "grid-world" / "rnn-hn_state-embed-5") in out  # the done line lists every directory


@pytest.mark.parametrize("sizes, fragment", [
    (["0", "25"], "--state-embeds sizes must be >= 1"),
    (["25", "25"], "--state-embeds names 25 more than once"),
])
def test_state_embedding_sweep_checks_sizes_before_training(tmp_path, capsys, sizes, fragment):
    code, _, err = run_cli(["sweep", "--state-embeds", *sizes, "--out", str(tmp_path / "s")], capsys)
    assert code == 2 and fragment in err and "Traceback" not in err
    assert not (tmp_path / "s").exists()


def test_reproduce_fig9_tunes_the_state_embedding_on_request(tmp_path, capsys, monkeypatch):
    """fig9 trains the tuned size (25) by default; --state-embeds redoes the paper's tuning.
    fig5 trains every method at 256, as the authors' Grid set did."""
    import hypermeta.analysis.report as report
    import hypermeta.sweeps.sweep as sweep

    sweeps = []
    monkeypatch.setattr(sweep, "run_sweep", lambda cfg, out, show_progress=True: sweeps.append(cfg))
    monkeypatch.setattr(report, "write_report", lambda paths, out, title: [])
    base = ["--envs", "grid-world", "--frames", "9600", "--lr", "1e-3", "--out", str(tmp_path)]
    code, _, err = run_cli(["reproduce", "fig9", *base], capsys)
    assert code == 0, err
    assert sweeps[-1].state_embeds is None
    assert [c.model.policy_state_embed for c, _ in sweep.plan(sweeps[-1], tmp_path)] == [25, 25, 25]
    code, out, err = run_cli(["reproduce", "fig9", *base, "--state-embeds", "5", "25", "125", "625"], capsys)
    assert code == 0, err
    assert sweeps[-1].state_embeds == (5, 25, 125, 625)
    assert "x 4 state embeddings (5 25 125 625) per method" in out
    assert len(sweep.plan(sweeps[-1], tmp_path)) == 1 + 2 * 4  # RNN once, RNN+S and RNN+HN per size
    code, _, err = run_cli(["reproduce", "fig5", *base], capsys)
    assert code == 0, err
    assert {c.model.policy_state_embed for c, _ in sweep.plan(sweeps[-1], tmp_path)} == {256}


def _fake_runs(planned, score) -> None:
    """Finished run directories of `planned` with constant returns score(size, lr, seed)."""
    for cfg, path in planned:
        path.mkdir(parents=True)
        (path / "config.json").write_text(json.dumps(cfg.to_dict()))
        rows = [{"seed": s, "lr": lr, "update": u, "frames": u * 960,
                 "meta_episode_return": score(cfg.model.policy_state_embed, lr, s)}
                for lr in cfg.lr for s in cfg.seeds for u in (1, 2, 3, 4)]
        pd.DataFrame(rows).to_csv(path / "metrics.csv", index=False)
        (path / "summary.json").write_text("{}")


def test_report_chooses_the_state_embedding_with_the_learning_rate(tmp_path):
    """As the paper's appendix 8.2 tuned it: per environment and method, the best (state
    embedding, lr) pair by the mean over seeds of the average return is reported."""
    from hypermeta.sweeps.sweep import plan

    planned = plan(SweepConfig(env="grid-world", methods=("rnn", "rnn-s"), lr=(1e-3, 3e-4), seeds=(1, 2),
                               frames=3840, state_embeds=(5, 25, 125)), tmp_path / "sweep")
    _fake_runs(planned, lambda size, lr, seed: {5: 1.0, 25: 2.0, 125: 3.0}[size] * (2 if lr == 1e-3 else 1) + seed / 10)
    df = load_runs([tmp_path / "sweep"])
    assert sorted(df.loc[df["method"] == "rnn-s", "state_embed"].unique()) == [5, 25, 125]
    assert set(df.loc[df["method"] == "rnn", "state_embed"]) == {0}  # RNN's policy has no state embedding
    best = stats.best_lrs(df).set_index("method")
    assert (best.loc["rnn-s", "state_embed"], best.loc["rnn-s", "lr"]) == (125, 1e-3)
    chosen = stats.select_best(df)
    assert {tuple(r) for r in chosen.loc[chosen["method"] == "rnn-s", ["state_embed", "lr"]].to_numpy()} == {(125, 1e-3)}
    write_report([tmp_path / "sweep"], tmp_path / "report")
    text = (tmp_path / "report" / "report.md").read_text()
    assert "| grid-world | RNN+S | 0.001 | 125 |" in text
    assert "Best learning rate and state embedding by the `average` return (a method run at several" in text
    scores = pd.read_csv(tmp_path / "report" / "scores.csv")
    assert len(scores[scores["method"] == "rnn-s"]) == 3 * 2 * 2  # every size x lr x seed is its own run
