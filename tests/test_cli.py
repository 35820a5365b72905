"""Tests of the `hypermeta` command line: usage errors, help, run directories, resume.

Most cases call `hypermeta.cli.main` in-process; a few run the installed `hypermeta`
script to check that no traceback reaches the terminal. Training uses a tiny model and
4 envs x 15 steps = 60 frames per update, so 960 frames are 16 updates.

Only one configuration is trained from scratch (the `finished_run` fixture, ~1 minute
of compilation on a busy 2-core CPU); the resume test re-uses its compiled program
through a per-session JAX compilation cache.
"""

from __future__ import annotations

import csv
import dataclasses
import filecmp
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hypermeta.cli import main
from hypermeta.config import GRUConfig, ModelConfig, PPOConfig, TrainConfig
from hypermeta.envs.registry import ENVIRONMENTS
from hypermeta.methods.registry import METHODS

SMALL = [
    "--model.gru.size", "16",
    "--model.policy-state-embed", "8",
    "--model.policy-hidden", "16", "8",
    "--ppo.num-envs", "4",
    "--ppo.num-steps", "15",
    "--ppo.minibatches", "2",
]
FRAMES_PER_UPDATE = 4 * 15
FRAMES = 960  # 16 updates
UPDATES = FRAMES // FRAMES_PER_UPDATE
SEEDS, LRS = (1, 2), (1e-3, 3e-4)
RUN_ARGS = [
    "--method", "RNN+HN",  # the paper's spelling
    *SMALL,
    "--frames", str(FRAMES),
    "--eval-interval", "1",
    "--checkpoint-interval", "4",
    "--eval-trials", "4",
    "--seeds", *map(str, SEEDS),
    "--lr", *map(str, LRS),
]
EXPECTED_CONFIG = TrainConfig(
    env="grid-world",
    method="rnn-hn",  # typed as RNN+HN; stored under its canonical name
    frames=FRAMES,
    seeds=SEEDS,
    lr=LRS,
    eval_interval=1,
    eval_trials=4,
    checkpoint_interval=4,
    model=ModelConfig(gru=GRUConfig(16), policy_state_embed=8, policy_hidden=(16, 8)),
    ppo=PPOConfig(num_envs=4, num_steps=15, minibatches=2),
)
METRIC_COLUMNS = [
    "seed", "lr", "update", "frames", "meta_episode_return",
    "episode_1_return", "episode_2_return", "episode_3_return", "episode_4_return",
    "policy_loss", "value_loss", "entropy", "frames_per_second",
]
# Everything in a metrics row that training determines (frames_per_second is wall-clock).
DETERMINISTIC_COLUMNS = [
    "meta_episode_return", "episode_1_return", "episode_2_return", "episode_3_return", "episode_4_return",
    "policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction", "train_reward",
]


# --------------------------------------------------------------------------- helpers


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `hypermeta ARGV` run in-process; 0 if main returns."""
    try:
        main(argv)
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    out, err = capsys.readouterr()
    return code, out, err


def assert_usage_error(code: int, err: str, *fragments: str) -> str:
    """Exit code 2 and exactly one stderr line 'hypermeta: error: ...' containing every fragment."""
    assert "Traceback" not in err, err
    assert code == 2, (code, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith("hypermeta: error:"), line
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    return line


def hypermeta_script() -> str:
    script = Path(sys.executable).with_name("hypermeta")
    if script.exists():
        return str(script)
    found = shutil.which("hypermeta")
    if found is None:
        pytest.skip("the hypermeta script is not installed")
    return found


def snapshot(path: Path) -> dict[str, tuple[int, int, bytes | None]]:
    """Every entry under `path`: (mode, mtime_ns, bytes of files)."""
    out = {}
    for p in sorted(path.rglob("*")):
        st = p.stat()
        out[str(p.relative_to(path))] = (st.st_mode, st.st_mtime_ns, p.read_bytes() if p.is_file() else None)
    return out


def read_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def row_key(row: dict[str, str]) -> tuple[int, float, int]:
    return int(row["seed"]), float(row["lr"]), int(row["update"])


def write_config(path: Path, cfg: TrainConfig) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(cfg.to_dict()))


TINY_STORED = dataclasses.replace(EXPECTED_CONFIG, method="rnn")


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, compilation_cache) -> Path:
    """A finished 4-run (2 seeds x 2 lrs) training of RNN+HN, 16 updates, checkpoints every 4."""
    out = tmp_path_factory.mktemp("runs") / "finished"
    try:
        main(["train", *RUN_ARGS, "--out", str(out)])
    except SystemExit as e:  # a usage error would end the test session's fixture here
        pytest.fail(f"training exited with {e.code}")
    return out


# --------------------------------------------------------------------------- usage errors


def test_unknown_env_lists_environments(capsys):
    code, _, err = run_cli(["train", "--env", "no-such-world"], capsys)
    assert_usage_error(code, err, "'no-such-world'", *ENVIRONMENTS)


def test_unknown_method_lists_methods(capsys):
    code, _, err = run_cli(["train", "--method", "lstm-xl"], capsys)
    assert_usage_error(code, err, "'lstm-xl'", *METHODS, *(m.paper_name for m in METHODS.values()))


@pytest.mark.parametrize("frames", ["0", "-960"])
def test_frames_must_be_positive(capsys, tmp_path, frames):
    code, _, err = run_cli(["train", "--frames", frames, "--out", str(tmp_path / "r")], capsys)
    assert_usage_error(code, err, "--frames", frames, "positive")
    assert not (tmp_path / "r").exists()


def test_frames_less_than_one_update(capsys, tmp_path):
    code, _, err = run_cli(["train", *SMALL, "--frames", "59", "--out", str(tmp_path / "r")], capsys)
    assert_usage_error(code, err, "--frames 59", "one update", "60 frames")
    code, _, err = run_cli(["train", "--frames", "100", "--out", str(tmp_path / "r")], capsys)
    assert_usage_error(code, err, "--frames 100", "one update", "960 frames")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("lr", ["0", "-0.001"])
def test_lr_must_be_positive(capsys, tmp_path, lr):
    code, _, err = run_cli(["train", "--lr", "3e-4", lr, "--out", str(tmp_path / "r")], capsys)
    assert_usage_error(code, err, "--lr", str(float(lr)), "positive")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("option, value, allowed", [
    ("--ppo.gamma", "1.5", "in (0, 1]"), ("--ppo.gamma", "0", "in (0, 1]"), ("--ppo.gae-lambda", "-0.1", "in [0, 1]"),
    ("--ppo.clip", "0", "positive"), ("--ppo.max-grad-norm", "-1", "positive"), ("--ppo.entropy-coef", "-0.01", ">= 0"),
])
def test_ppo_values_out_of_range(capsys, tmp_path, option, value, allowed):
    code, _, err = run_cli(["train", option, value, "--out", str(tmp_path / "r")], capsys)
    assert_usage_error(code, err, option, str(float(value)), allowed)
    assert not (tmp_path / "r").exists()


def test_resume_with_another_out_is_refused(capsys, tmp_path):
    write_config(tmp_path / "run", TINY_STORED)
    code, _, err = run_cli(["train", "--resume", str(tmp_path / "run"), "--out", str(tmp_path / "elsewhere")], capsys)
    assert_usage_error(code, err, "--out", "--resume", "drop --out")


def test_env_minibatches_must_divide_num_envs(capsys, tmp_path):
    argv = ["train", "--ppo.num-envs", "4", "--ppo.minibatches", "3", "--ppo.minibatch", "envs",
            "--out", str(tmp_path / "r")]
    code, _, err = run_cli(argv, capsys)
    assert_usage_error(code, err, "--ppo.minibatches 3", "divide", "--ppo.num-envs 4")
    assert not (tmp_path / "r").exists()


def test_transition_minibatches_cannot_exceed_the_rollout(capsys, tmp_path):
    argv = ["train", "--ppo.num-envs", "2", "--ppo.num-steps", "3", "--ppo.minibatches", "7",
            "--out", str(tmp_path / "r")]
    code, _, err = run_cli(argv, capsys)
    assert_usage_error(code, err, "--ppo.minibatches 7", "6 transitions")
    assert not (tmp_path / "r").exists()


def test_proper_time_limits_need_an_environment_that_reports_them(capsys, tmp_path):
    # Every registered JAX environment reports its time limits; a made-up "proper" on Grid-World is allowed.
    from hypermeta.envs.registry import ENVIRONMENTS, make_env
    from hypermeta.validate import reports_timeouts

    assert all(reports_timeouts(make_env(name)) for name in ENVIRONMENTS if name != "ml10")
    argv = ["train", "--ppo.time-limit", "bootstrap", "--out", str(tmp_path / "r")]
    code, _, err = run_cli(argv, capsys)
    assert code != 0 and "bootstrap" in err
    assert not (tmp_path / "r").exists()


def test_existing_out_without_resume_is_refused_and_untouched(capsys, tmp_path, finished_run):
    out = tmp_path / "existing"
    shutil.copytree(finished_run, out)
    (out / "summary.json").unlink()  # an unfinished run is the case that matters most
    before = snapshot(out)
    code, _, err = run_cli(["train", *RUN_ARGS, "--out", str(out)], capsys)
    assert_usage_error(code, err, str(out), "already exists", "--resume")
    assert snapshot(out) == before


def test_resume_missing_dir(capsys, tmp_path):
    code, _, err = run_cli(["train", "--resume", str(tmp_path / "nowhere")], capsys)
    assert_usage_error(code, err, "--resume", str(tmp_path / "nowhere"), "no such run directory")


def test_resume_dir_without_config(capsys, tmp_path):
    (tmp_path / "metrics.csv").write_text("seed,lr\n")
    code, _, err = run_cli(["train", "--resume", str(tmp_path)], capsys)
    assert_usage_error(code, err, str(tmp_path), "no config.json")


@pytest.mark.parametrize("text", ["{not json", "", "[]", '{"env": "grid-world"}',
                                  json.dumps(TINY_STORED.to_dict())[:200]])
def test_resume_corrupt_config(capsys, tmp_path, text):
    (tmp_path / "config.json").write_text(text)
    code, _, err = run_cli(["train", "--resume", str(tmp_path)], capsys)
    assert_usage_error(code, err, str(tmp_path), "config.json is corrupt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]


def test_resume_finished_run(capsys, finished_run):
    before = snapshot(finished_run)
    code, _, err = run_cli(["train", "--resume", str(finished_run)], capsys)
    assert_usage_error(code, err, str(finished_run), "already finished", "summary.json")
    assert snapshot(finished_run) == before


def test_resume_conflicting_option_names_it(capsys, tmp_path):
    write_config(tmp_path, TINY_STORED)
    code, _, err = run_cli(["train", "--resume", str(tmp_path), "--frames", "1920"], capsys)
    assert_usage_error(code, err, "frames=1920", f"frames={FRAMES}", "differs")
    code, _, err = run_cli(["train", "--resume", str(tmp_path), "--model.gru.size", "32"], capsys)
    assert_usage_error(code, err, "model.gru.size=32", "(model.gru.size=16)", "differs")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]


def test_unknown_subcommand(capsys):
    code, _, err = run_cli(["frobnicate"], capsys)
    assert_usage_error(code, err, "'frobnicate'", "train")


@pytest.mark.parametrize("case", ["unknown-env", "corrupt-config"])
def test_installed_script_prints_no_traceback(tmp_path, case):
    if case == "unknown-env":
        argv, fragment = ["train", "--env", "no-such-world", "--out", str(tmp_path / "r")], "no-such-world"
    else:
        (tmp_path / "config.json").write_text("{not json")
        argv, fragment = ["train", "--resume", str(tmp_path)], "config.json is corrupt"
    proc = subprocess.run([hypermeta_script(), *argv], capture_output=True, text=True, timeout=300)
    assert_usage_error(proc.returncode, proc.stderr, fragment)


def test_model_sizes_are_validated(capsys, tmp_path):
    out = tmp_path / "r"
    code, _, err = run_cli(["train", *SMALL, "--model.gru.size", "-3", "--frames", "60", "--out", str(out)], capsys)
    assert_usage_error(code, err, "--model.gru.size", "-3")
    assert not out.exists()


def test_resume_accepts_other_spelling_of_same_method(capsys, tmp_path, monkeypatch):
    import hypermeta.training.loop as loop

    calls = []
    monkeypatch.setattr(loop, "train", lambda cfg, out, resume=False, show_progress=True: calls.append((cfg, resume)) or
                        type("Run", (), {"path": out})())
    write_config(tmp_path, dataclasses.replace(TINY_STORED, method="RNN+HN"))
    code, _, err = run_cli(["train", "--resume", str(tmp_path), "--method", "rnn-hn"], capsys)
    assert code == 0, err
    assert calls and calls[0][1] is True


# --------------------------------------------------------------------------- help


def test_train_help_lists_environments_and_methods(capsys):
    code, out, err = run_cli(["train", "--help"], capsys)
    assert code == 0, err
    for name in [*ENVIRONMENTS, *METHODS, "RNN+HN"]:
        assert name in out, name
    assert "--ppo.num-envs" in out and "--model.gru.size" in out


# --------------------------------------------------------------------------- a finished run


def test_finished_run_writes_its_files(finished_run):
    stored = json.loads((finished_run / "config.json").read_text())
    assert TrainConfig.from_dict(stored) == EXPECTED_CONFIG
    assert stored == json.loads(json.dumps(EXPECTED_CONFIG.to_dict()))

    columns, rows = read_rows(finished_run / "metrics.csv")
    assert [c for c in columns if c in METRIC_COLUMNS] == METRIC_COLUMNS
    runs = [(s, lr) for lr in LRS for s in SEEDS]
    expected = sorted((s, lr, u) for s, lr in runs for u in range(1, UPDATES + 1))
    assert sorted(map(row_key, rows)) == expected  # one row per evaluation per run, no duplicates
    for r in rows:
        assert int(r["frames"]) == int(r["update"]) * FRAMES_PER_UPDATE
        values = [float(r[c]) for c in METRIC_COLUMNS]
        assert all(math.isfinite(v) for v in values), r
        ep = sum(float(r[f"episode_{k}_return"]) for k in range(1, 5))
        assert float(r["meta_episode_return"]) == pytest.approx(ep, rel=1e-5, abs=1e-5)

    png = (finished_run / "curve.png").read_bytes()
    assert len(png) > 1000 and png.startswith(b"\x89PNG\r\n\x1a\n")

    summary = json.loads((finished_run / "summary.json").read_text())
    assert summary["updates"] == UPDATES and summary["frames_per_run"] == FRAMES
    assert len(summary["final_meta_episode_return"]) == len(runs)

    steps = sorted(int(p.name) for p in (finished_run / "checkpoints").iterdir() if p.name.isdigit())
    assert steps and steps[-1] == UPDATES and set(steps) <= {4, 8, 12, 16}


def test_paper_spelling_rnn_plus_hn_trains(finished_run):
    cfg = TrainConfig.from_dict(json.loads((finished_run / "config.json").read_text()))
    assert cfg.method == "rnn-hn"  # the paper's spelling is stored canonically
    assert (finished_run / "summary.json").exists()


# --------------------------------------------------------------------------- resume


def test_resume_after_crash_matches_uninterrupted_run(capsys, tmp_path, finished_run):
    """A crash just after the checkpoint at update 12, during update 15, then --resume."""
    run = tmp_path / "crashed"
    shutil.copytree(finished_run, run)
    reference_columns, reference = read_rows(finished_run / "metrics.csv")
    (run / "summary.json").unlink()
    (run / "curve.png").unlink()
    shutil.rmtree(run / "checkpoints" / str(UPDATES))
    assert (run / "checkpoints" / "12").is_dir()
    # metrics.csv as the crash left it: rows for updates 13 and 14 (past the checkpoint)
    # and half of a row for update 15.
    text = (run / "metrics.csv").read_text()
    lines = text.splitlines(keepends=True)
    kept = [lines[0]] + [ln for ln in lines[1:] if int(ln.split(",")[2]) <= 14]
    torn = next(ln for ln in lines[1:] if int(ln.split(",")[2]) == 15)
    (run / "metrics.csv").write_text("".join(kept) + torn[: len(torn) // 2])

    code, out, err = run_cli(["train", "--resume", str(run)], capsys)
    assert code == 0, err
    assert "Traceback" not in err
    assert (run / "summary.json").exists() and (run / "curve.png").exists()
    assert filecmp.cmp(run / "config.json", finished_run / "config.json", shallow=False)

    raw = (run / "metrics.csv").read_text()
    assert raw.endswith("\n")
    columns, rows = read_rows(run / "metrics.csv")
    assert columns == reference_columns
    assert all(None not in r and None not in r.values() for r in rows)  # no torn or overlong lines
    keys = [row_key(r) for r in rows]
    assert len(keys) == len(set(keys))  # no duplicates
    assert len(rows) == len(reference)
    assert sorted(keys) == sorted(map(row_key, reference))
    # Rows up to the checkpoint are kept verbatim (their wall-clock frames_per_second
    # too), which shows training continued from update 12 rather than from scratch.
    up_to_checkpoint = [lines[0]] + [ln for ln in lines[1:] if int(ln.split(",")[2]) <= 12]
    assert raw.splitlines(keepends=True)[: len(up_to_checkpoint)] == up_to_checkpoint

    # Training is deterministic given the seed on CPU: the resumed run must continue
    # exactly where the uninterrupted one went.
    ref = {row_key(r): r for r in reference}
    for r in rows:
        want = ref[row_key(r)]
        for c in DETERMINISTIC_COLUMNS:
            assert float(r[c]) == pytest.approx(float(want[c]), rel=1e-5, abs=1e-6), (row_key(r), c)
    for r in rows:
        want = ref[row_key(r)]
        assert [r[c] for c in DETERMINISTIC_COLUMNS] == [want[c] for c in DETERMINISTIC_COLUMNS], row_key(r)
    summary, ref_summary = (json.loads((d / "summary.json").read_text()) for d in (run, finished_run))
    assert summary["final_meta_episode_return"] == ref_summary["final_meta_episode_return"]


def test_resume_before_first_checkpoint_starts_over(capsys, tmp_path, finished_run):
    """A crash before any checkpoint: rows already written are dropped and training restarts."""
    run = tmp_path / "early"
    run.mkdir()
    shutil.copy(finished_run / "config.json", run / "config.json")
    lines = (finished_run / "metrics.csv").read_text().splitlines(keepends=True)
    (run / "metrics.csv").write_text("".join(lines[:5]) + lines[5][:10])
    code, _, err = run_cli(["train", "--resume", str(run)], capsys)
    assert code == 0, err
    _, rows = read_rows(run / "metrics.csv")
    _, reference = read_rows(finished_run / "metrics.csv")
    assert sorted(map(row_key, rows)) == sorted(map(row_key, reference))


def test_interrupt_saves_checkpoint_at_chunk_boundary_and_resumes(capsys, tmp_path, monkeypatch, finished_run,
                                                                   sigint_enabled):
    """Ctrl-C (SIGINT) while a chunk is running: the loop finishes that chunk (its input
    state was donated to XLA, so only its output can be saved), checkpoints it (update 6,
    between the regular checkpoints 4 and 8), exits 130 with the resume command, and
    --resume then reproduces the uninterrupted run."""
    import os
    import signal

    from hypermeta.training.learner import Learner

    compile_chunk = Learner.compile_chunk
    calls = []

    def compile_interrupting_chunk(self, parallel_runs=0):
        chunk = compile_chunk(self, parallel_runs)

        def run(states, n):
            result = chunk(states, n)
            calls.append(n)
            if len(calls) == 6:
                os.kill(os.getpid(), signal.SIGINT)  # as if Ctrl-C were pressed during update 6
            return result

        return run

    monkeypatch.setattr(Learner, "compile_chunk", compile_interrupting_chunk)
    out = tmp_path / "interrupted"
    code, _, err = run_cli(["train", *RUN_ARGS, "--out", str(out)], capsys)
    assert code == 130, err
    assert "Traceback" not in err
    assert "update 6/16" in err and f"--resume {out}" in err
    assert (out / "checkpoints" / "6").is_dir() and not (out / "summary.json").exists()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler was restored

    monkeypatch.setattr(Learner, "compile_chunk", compile_chunk)
    code, _, err = run_cli(["train", "--resume", str(out)], capsys)
    assert code == 0, err
    _, rows = read_rows(out / "metrics.csv")
    _, reference = read_rows(finished_run / "metrics.csv")
    assert sorted(map(row_key, rows)) == sorted(map(row_key, reference))
    ref = {row_key(r): r for r in reference}
    for r in rows:
        assert [r[c] for c in DETERMINISTIC_COLUMNS] == [ref[row_key(r)][c] for c in DETERMINISTIC_COLUMNS], row_key(r)


def test_stop_requests_leave_an_ignored_sigint_ignored():
    """A run started in the background (SIGINT ignored) is not stopped by Ctrl-C in the
    terminal; SIGTERM still asks it to stop."""
    import signal

    from hypermeta.training.loop import _stop_requests

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        term_before = signal.getsignal(signal.SIGTERM)
        with _stop_requests() as stop:
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            handler = signal.getsignal(signal.SIGTERM)
            assert handler is not term_before
            handler(signal.SIGTERM, None)
            assert stop.is_set()
        assert signal.getsignal(signal.SIGTERM) is term_before
    finally:
        signal.signal(signal.SIGINT, previous)


# --------------------------------------------------------------------------- method-dependent defaults

END_TO_END = ("rnn", "rnn-s", "rnn-hn", "rnn-hn-kaiming", "rnn-hn-ti", "rnn-hn-bi", "rnn-s-ti")


def test_grid_world_policy_state_embedding_is_the_papers_grid_comparison_size():
    """25 for the end-to-end methods on every grid-world (the paper's Grid comparison of RNN, RNN+S
    and RNN+HN, tuned over 5 25 125 625); 256, the authors' XL size, for every other method and
    on every other environment."""
    from hypermeta.families import GRID_WORLD, method_defaults

    assert GRID_WORLD.method == "rnn-hn" and GRID_WORLD.model.policy_state_embed == 25
    assert set(END_TO_END) < set(METHODS)
    for env, spec in ENVIRONMENTS.items():
        for method in METHODS:
            grid = spec.family == ENVIRONMENTS["grid-world"].family
            expected = 25 if grid and method in END_TO_END else 256
            cfg = method_defaults(env, method)
            assert (cfg.env, cfg.method, cfg.model.policy_state_embed) == (env, method, expected)
    assert method_defaults("grid-world-show", "RNN+HN").model.policy_state_embed == 25  # the paper's spelling


@pytest.mark.parametrize("argv, expected", [
    (["--env", "grid-world-dense", "--method", "RNN+S"], 25),
    (["--method", "rnn-hn"], 25),
    (["--method", "ti-pp-hn"], 256),
    (["--env", "grid-world", "--method=vi-hn"], 256),
    (["--env", "cheetah-vel", "--method", "rnn-hn"], 256),
    (["--method", "rnn-hn", "--model.policy-state-embed", "64"], 64),
    (["--method", "vi-hn", "--model.policy-state-embed", "25"], 25),
])
def test_train_resolves_the_state_embedding_for_its_method(capsys, tmp_path, monkeypatch, argv, expected):
    """The default depends on --method; an explicit --model.policy-state-embed wins; the stored
    config.json holds the number."""
    import hypermeta.training.loop as loop

    calls = []
    monkeypatch.setattr(loop, "train", lambda cfg, out, resume=False, show_progress=True: calls.append(cfg) or type("Run", (), {"path": out})())
    code, _, err = run_cli(["train", *argv, "--out", str(tmp_path / "r")], capsys)
    assert code == 0, err
    (cfg,) = calls
    assert cfg.model.policy_state_embed == expected
    stored = json.loads(json.dumps(cfg.to_dict()))
    assert stored["model"]["policy_state_embed"] == expected and TrainConfig.from_dict(stored) == cfg


def test_resume_keeps_the_stored_state_embedding(capsys, tmp_path, monkeypatch):
    """A run stored with 256 on Grid-World (before the default became 25) resumes with 256."""
    import hypermeta.training.loop as loop

    calls = []
    monkeypatch.setattr(loop, "train", lambda cfg, out, resume=False, show_progress=True: calls.append(cfg) or type("Run", (), {"path": out})())
    stored = dataclasses.replace(TINY_STORED, method="rnn-hn",
                                 model=dataclasses.replace(TINY_STORED.model, policy_state_embed=256))
    write_config(tmp_path, stored)
    code, _, err = run_cli(["train", "--resume", str(tmp_path)], capsys)
    assert code == 0, err
    assert calls[0].model.policy_state_embed == 256


def test_a_new_run_records_the_physics_engine_it_uses_on_mujoco_tasks():
    """"auto" is stored as the engine it picked (C on this CPU) for a MuJoCo task, an explicit
    engine as given, and left "auto" where there is no physics (Grid-World); a run recorded
    with "mjx" resumed with "auto" on this CPU is refused, not switched."""
    from hypermeta.training.loop import recorded_config

    cheetah = TrainConfig(env="cheetah-vel")
    assert recorded_config(cheetah).physics == "c"
    assert recorded_config(dataclasses.replace(cheetah, physics="mjx")).physics == "mjx"
    assert recorded_config(TrainConfig(env="grid-world")).physics == "auto"
    assert recorded_config(cheetah).differences(cheetah) == []
    assert dataclasses.replace(cheetah, physics="mjx").differences(cheetah) == ["physics"]


def test_importing_the_cli_starts_no_jax_backend():
    """A sweep's driver imports the CLI on a GPU node: a JAX array made at import (an environment's
    constant table) would start JAX there and reserve most of a GPU that Ray gives to a cell."""
    code = ("import hypermeta.cli, hypermeta.sweeps.cluster, hypermeta.sweeps.progress\n"
            "from jax._src import xla_bridge\n"
            "assert 'jax' in __import__('sys').modules\n"
            "print('started' if xla_bridge.backends_are_initialized() else 'none')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "none"
