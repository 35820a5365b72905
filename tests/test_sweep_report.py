"""`hypermeta sweep`, `reproduce` and `report` on a small real sweep.

The sweep trains RNN and RNN+S at the paper's Grid-World sizes for 10 updates (2 lrs x
2 seeds, evaluations every 5 updates), about a minute on a 2-core CPU, once per module.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from hypermeta.analysis import stats
from hypermeta.analysis.report import write_report
from hypermeta.analysis.runs import load_runs
from hypermeta.cli import main
from hypermeta.errors import UsageError
from hypermeta.sweep import SweepConfig, run_sweep

SWEEP = SweepConfig(env="grid-world", methods=("rnn", "RNN+S"), lr=(1e-3, 3e-4), seeds=(1, 2), frames=9600,
                    grad_info=True)


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
    # as an interruption after update 5 leaves it: no summary, no final checkpoint, rows up to 5
    (run / "summary.json").unlink()
    shutil.rmtree(run / "checkpoints" / "10")
    reference[reference["update"] <= 5].to_csv(run / "metrics.csv", index=False)
    untouched = snapshot(out / "grid-world" / "rnn")
    run_sweep(SWEEP, out, show_progress=False)
    printed = capsys.readouterr().out
    assert "rnn: finished, skipped" in printed and "rnn-s: resuming" in printed
    assert snapshot(out / "grid-world" / "rnn") == untouched
    resumed = pd.read_csv(run / "metrics.csv")
    assert (run / "summary.json").exists()
    key = ["seed", "lr", "update"]
    pd.testing.assert_frame_equal(resumed.sort_values(key)[key].reset_index(drop=True),
                                  reference.sort_values(key)[key].reset_index(drop=True))


def test_sweep_refuses_a_directory_holding_another_run(sweep_dir, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(sweep_dir, out)
    with pytest.raises(UsageError, match=r"frames=9600.*frames=19200.*another --out"):
        run_sweep(SweepConfig(**{**SWEEP.__dict__, "frames": 19200}), out, show_progress=False)


@pytest.mark.parametrize("methods, fragment", [
    (("rnn", "ti"), "'ti' is part of the paper but not implemented yet"),
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
    files = write_report([sweep_dir], out)
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
    assert "Aggregate" in text


def test_report_merges_run_directories_from_two_machines(sweep_dir, tmp_path):
    """Seed 1 trained on one machine, seed 2 on another: the merged report equals the whole sweep's."""
    for seed in (1, 2):
        run = tmp_path / f"machine{seed}" / "rnn"
        run.mkdir(parents=True)
        cfg = json.loads((sweep_dir / "grid-world" / "rnn" / "config.json").read_text())
        (run / "config.json").write_text(json.dumps({**cfg, "seeds": [seed]}))
        rows = pd.read_csv(sweep_dir / "grid-world" / "rnn" / "metrics.csv")
        rows[rows["seed"] == seed].to_csv(run / "metrics.csv", index=False)
    merged = load_runs([tmp_path / "machine1", tmp_path / "machine2"]).drop(columns="run_dir")
    whole = load_runs([sweep_dir / "grid-world" / "rnn"]).drop(columns="run_dir")
    pd.testing.assert_frame_equal(merged, whole)
    a = write_report([tmp_path / "machine1", tmp_path / "machine2"], tmp_path / "ra")
    b = write_report([sweep_dir / "grid-world" / "rnn"], tmp_path / "rb")
    table = lambda d: (d / "report.md").read_text().split("## Aggregate")[0].split("\n", 2)[2]  # noqa: E731
    assert table(tmp_path / "ra") == table(tmp_path / "rb").replace("from 1 run directories", "from 2 run directories")
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


# --------------------------------------------------------------------------- reproduce


def test_reproduce_lists_figures_with_budgets(capsys):
    code, out, _ = run_cli(["reproduce"], capsys)
    assert code == 0
    assert "fig9" in out and "4M frames x 135 runs" in out and "h on a 2-core CPU" in out
    assert "fig5" in out and "needs" in out


@pytest.mark.parametrize("argv, fragments", [
    (["reproduce", "fig5"], ["fig5", "not implemented yet", "fig9"]),
    (["reproduce", "fig99"], ["unknown figure 'fig99'", "fig9", "fig11"]),
    (["reproduce", "fig9", "--envs", "cheetah-dir"], ["--envs cheetah-dir", "grid-world-show"]),
])
def test_reproduce_errors(capsys, argv, fragments):
    code, _, err = run_cli(argv, capsys)
    assert code == 2 and "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
