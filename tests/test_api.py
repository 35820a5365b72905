"""The Python API (`hypermeta.configure`, `train`, `sweep`, `evaluate`, `report`, `load_run`, `Run`,
`Policy`) and the command line's use of it.

One tiny Grid-World RNN+HN directory of 2 runs (seeds 1 and 2) is trained once for the module
through `hypermeta.train` (4 updates of 60 frames); the policy tests play its seed-2 policy in
plain Python loops against the compiled evaluation. Everything else replaces the training loop.
"""

from __future__ import annotations

import csv
import dataclasses
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import jax
import numpy as np
import pytest

import hypermeta
from hypermeta import api
from hypermeta.cli import main
from hypermeta.config import ModelConfig, TrainConfig
from hypermeta.envs.trial import TrialWrapper
from hypermeta.errors import UsageError
from hypermeta.families import method_defaults

MODEL_FIELDS = {f.name for f in dataclasses.fields(ModelConfig)}
# A small GRU wherever the schema keeps its size (its own section, or the older flat field).
SMALL_GRU = {"gru": {"size": 16}} if "gru" in MODEL_FIELDS else {"gru_size": 16}
TINY = dict(model={**SMALL_GRU, "policy_state_embed": 8, "policy_hidden": (16, 8), "latent_dim": 3},
            ppo={"num_envs": 4, "num_steps": 15, "minibatches": 2})
RUN_SETTINGS = dict(frames=240, seeds=(1, 2), lr=1e-3, eval_interval=2, checkpoint_interval=2, eval_trials=4, **TINY)
K, STEPS = 4, 15  # Grid-World: 4 episodes of 15 steps per trial


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> hypermeta.Run:
    cfg = hypermeta.configure("grid-world", "RNN+HN", **RUN_SETTINGS)
    return hypermeta.train(cfg, tmp_path_factory.mktemp("api") / "run", progress=False)


def fake_train(calls: list):
    """A stand-in for `hypermeta.training.loop.train` that records its call and writes a finished run."""

    def train(cfg, out, resume=False, **kwargs):
        calls.append((cfg, Path(out), resume, kwargs))
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(__import__("json").dumps(cfg.to_dict()))
        (out / "summary.json").write_text("{}")
        return type("RunDir", (), {"path": out})()

    return train


def one_line_error(excinfo: pytest.ExceptionInfo, *fragments: str) -> str:
    message = str(excinfo.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


# --------------------------------------------------------------------------- the package


def test_importing_the_package_is_lazy_and_starts_no_jax():
    """`import hypermeta` imports no JAX; the API's names load on first use, without starting a
    JAX backend."""
    code = """if True:
        import sys, hypermeta
        assert "jax" not in sys.modules and "hypermeta.api" not in sys.modules
        for name in ("configure", "train", "sweep", "report", "load_run", "Run", "TrainConfig", "UsageError"):
            assert name in hypermeta.__all__ and getattr(hypermeta, name) is not None, name
        import hypermeta.api, hypermeta.errors
        assert hypermeta.configure is hypermeta.api.configure and hypermeta.UsageError is hypermeta.errors.UsageError
        assert hypermeta.sweep is hypermeta.api.sweep and hypermeta.evaluate is hypermeta.api.evaluate
        assert "cluster" in __import__("inspect").signature(hypermeta.sweep).parameters
        from jax._src import xla_bridge
        print("started" if xla_bridge.backends_are_initialized() else "none")
    """
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "none"


# --------------------------------------------------------------------------- configure


def cli_config(argv: list[str], tmp_path: Path, monkeypatch) -> TrainConfig:
    """The configuration `hypermeta train ARGV` would train."""
    import hypermeta.training.loop as loop

    calls = []
    monkeypatch.setattr(loop, "train", fake_train(calls))
    main(["train", *argv, "--out", str(tmp_path / "cli")])
    ((cfg, out, resume, _),) = calls
    assert (out, resume) == (tmp_path / "cli", False)
    return cfg


def test_configure_builds_what_the_command_line_trains(tmp_path, monkeypatch):
    argv = ["--env", "grid-world-dense", "--method", "RNN+S", "--frames", "9600", "--seeds", "1", "2", "--lr", "1e-3",
            "--ppo.num-envs", "8", "--ppo.clip", "0.1", "--model.latent-dim", "3", "--model.policy-hidden", "32",
            "--log", "tensorboard"]
    cfg = hypermeta.configure("grid-world-dense", "RNN+S", frames=9600, seeds=[1, 2], lr=1e-3,
                              ppo={"num_envs": 8}, model={"latent_dim": 3, "policy_hidden": 32},
                              log="tensorboard", **{"ppo.clip": 0.1})
    assert cfg == cli_config(argv, tmp_path, monkeypatch)
    assert cfg.method == "rnn-s" and cfg.seeds == (1, 2) and cfg.lr == (1e-3,) and cfg.model.policy_hidden == (32,)
    # The method-dependent default (the grid-worlds' end-to-end state embedding of 25) is the CLI's.
    assert cfg.model.policy_state_embed == 25 and cfg.ppo.num_steps == 60
    assert hypermeta.configure("grid-world", "vi-hn") == method_defaults("grid-world", "vi-hn")


@dataclass(frozen=True)
class Inner:
    size: int = 4
    widths: tuple[int, ...] = (8, 8)
    mode: Literal["a", "b"] = "a"


@dataclass(frozen=True)
class Outer:
    rate: float = 0.5
    inner: Inner = field(default_factory=Inner)
    other: Inner = field(default_factory=Inner)
    extra: int | None = None


def test_overrides_merge_nested_dataclasses_generically():
    """`with_overrides` knows no field names: any nesting of dataclasses, dicts merged field by field."""
    got = api.with_overrides(Outer(), rate=1, inner={"widths": 3, "mode": "b"}, **{"other.size": 2e1}, extra=7)
    assert got == Outer(rate=1.0, inner=Inner(widths=(3,), mode="b"), other=Inner(size=20), extra=7)
    assert type(got.rate) is float and type(got.other.size) is int
    assert api.with_overrides(got, extra=None, inner=Inner(size=1)) == dataclasses.replace(got, extra=None,
                                                                                          inner=Inner(size=1))
    with pytest.raises(UsageError) as e:
        api.with_overrides(Outer(), inner={"sise": 3})
    one_line_error(e, "'inner.sise'", "'inner.size'", "size, widths, mode")
    with pytest.raises(UsageError) as e:
        api.with_overrides(Outer(), inner={"mode": "c"})
    one_line_error(e, "inner.mode", "'a', 'b'", "'c'")


@pytest.mark.parametrize("overrides, fragments", [
    ({"framez": 1000}, ["'framez'", "did you mean 'frames'", "TrainConfig has"]),
    ({"ppo": {"num_env": 8}}, ["'ppo.num_env'", "'ppo.num_envs'"]),
    ({"frames": "many"}, ["frames must be an integer", "'many'"]),
    ({"seeds": [1, 2.5]}, ["seeds", "2.5", "integer"]),
    ({"lr": "fast"}, ["lr", "'fast'", "number"]),
    ({"ppo": {"minibatch": "episodes"}}, ["ppo.minibatch", "'transitions', 'envs'", "'episodes'"]),
    ({"ppo": 8}, ["ppo takes a dict", "num_envs", "got 8"]),
    ({"grad_info": "yes"}, ["grad_info", "True or False", "'yes'"]),
    ({"ppo": {"gamma": 1.5}}, ["gamma", "1.5", "(0, 1]"]),  # the command line's own check (validate)
    ({"frames": 59, **TINY}, ["--frames 59", "one update", "60 frames"]),
    ({"model": {"latent_dim": 0}}, ["latent-dim", "0"]),
])
def test_configure_rejects_bad_names_and_values_in_one_line(overrides, fragments):
    with pytest.raises(UsageError) as e:
        hypermeta.configure("grid-world", "rnn-hn", **overrides)
    one_line_error(e, *fragments)


@pytest.mark.parametrize("env, method, fragment", [("no-world", "rnn", "grid-world"), ("grid-world", "lstm-xl", "rnn-hn")])
def test_configure_names_the_environments_and_methods_there_are(env, method, fragment):
    with pytest.raises(UsageError) as e:
        hypermeta.configure(env, method)
    one_line_error(e, repr(env if env == "no-world" else method), fragment)


# --------------------------------------------------------------------------- the command line is built on the API


def test_every_command_calls_the_api(tmp_path, monkeypatch, capsys):
    calls = {}

    def record(name, result):
        return lambda *args, **kwargs: calls.setdefault(name, (args, kwargs)) and result

    monkeypatch.setattr(api, "train", record("train", api.Run(tmp_path / "t")))
    monkeypatch.setattr(api, "sweep", record("sweep", [api.Run(tmp_path / "s" / "grid-world" / "rnn")]))
    monkeypatch.setattr(api, "evaluate", record("evaluate", api.Evaluation(tmp_path / "e", {})))
    monkeypatch.setattr(api, "report", record("report", [tmp_path / "r" / "curves.png"]))
    main(["train", "--method", "rnn", "--frames", "960", "--out", str(tmp_path / "t")])
    main(["sweep", "--methods", "rnn", "--lr", "1e-3", "--seeds", "1", "--frames", "960", "--out", str(tmp_path / "s")])
    main(["eval", str(tmp_path / "t"), "--trials", "8", "--checkpoint", "4", "--compile-cache", "off"])
    main(["report", str(tmp_path / "s"), "--out", str(tmp_path / "r"), "--metric", "final", "--reach", "30", "35.5"])
    out = capsys.readouterr().out
    (cfg, out_dir), kwargs = calls["train"]
    assert cfg == hypermeta.configure("grid-world", "rnn", frames=960) and out_dir == tmp_path / "t"
    assert kwargs == {"resume": False, "compile_cache": None}
    (env, methods, sweep_out), kwargs = calls["sweep"]
    assert (env, methods, sweep_out, kwargs["cluster"]) == ("grid-world", ("rnn",), tmp_path / "s", None)
    assert (kwargs["lr"], kwargs["seeds"], kwargs["frames"]) == ((1e-3,), (1,), 960)
    (path,), kwargs = calls["evaluate"]
    assert path == tmp_path / "t" and (kwargs["trials"], kwargs["checkpoint"], kwargs["compile_cache"]) == (8, "4", "off")
    (dirs, report_out), kwargs = calls["report"]
    assert (dirs, report_out, kwargs) == ([tmp_path / "s"], tmp_path / "r", {"metric": "final", "reach": (30.0, 35.5)})
    assert f"done: {tmp_path / 't'}" in out and str(tmp_path / "s" / "grid-world" / "rnn") in out


def test_train_defaults_its_directory_and_passes_progress(tmp_path, monkeypatch):
    import hypermeta.training.loop as loop

    calls = []
    monkeypatch.setattr(loop, "train", fake_train(calls))
    monkeypatch.chdir(tmp_path)
    cfg = hypermeta.configure("grid-world", "RNN+HN", frames=960)
    got = hypermeta.train(dataclasses.replace(cfg, method="RNN+HN"), progress=False)
    (trained, out, resume, kwargs), = calls
    assert re.fullmatch(r"runs/grid-world_rnn-hn_\d{8}-\d{6}", out.as_posix()), out
    assert (trained, resume, kwargs) == (cfg, False, {"show_progress": False})  # stored under the canonical name
    assert got == hypermeta.Run(out) and got.config == cfg and got.finished
    with pytest.raises(UsageError) as e:
        hypermeta.train(None)
    one_line_error(e, "configure", "resume=True")


def test_sweep_plans_and_skips_as_the_command_does(tmp_path, monkeypatch):
    import hypermeta.training.loop as loop

    calls = []
    monkeypatch.setattr(loop, "train", fake_train(calls))
    runs = hypermeta.sweep("grid-world", "rnn", tmp_path, lr=1e-3, seeds=1, frames=9600, progress=False)
    assert runs == [hypermeta.Run(tmp_path / "grid-world" / "rnn")]
    cfg = runs[0].config
    assert (cfg.method, cfg.frames, cfg.lr, cfg.seeds) == ("rnn", 9600, (1e-3,), (1,))
    assert calls[0][3] == {"show_progress": False}
    assert hypermeta.sweep("grid-world", ["rnn"], tmp_path, lr=1e-3, seeds=1, frames=9600) == runs  # finished: skipped
    assert len(calls) == 1
    with pytest.raises(UsageError) as e:
        hypermeta.sweep("grid-world", "rnn", tmp_path, lrs=1e-3)
    one_line_error(e, "'lrs'", "'lr'")


def test_report_takes_runs_and_paths(tmp_path, monkeypatch):
    import hypermeta.analysis.report as report

    calls = []
    monkeypatch.setattr(report, "write_report", lambda paths, out, metric, title, reach:
                        calls.append((paths, out, metric, title, reach)) or [out / "curves.png"])
    files = hypermeta.report([hypermeta.Run(tmp_path / "a"), str(tmp_path / "b")], str(tmp_path / "r"), metric="auc")
    assert files == [tmp_path / "r" / "curves.png"]
    assert calls == [([tmp_path / "a", tmp_path / "b"], tmp_path / "r", "auc", None, ())]
    hypermeta.report(tmp_path / "a", title="mine", reach=[30])
    assert calls[1] == ([tmp_path / "a"], Path("report"), "average", "mine", (30.0,))
    with pytest.raises(UsageError) as e:
        hypermeta.report(tmp_path / "a", reach=["high"])
    one_line_error(e, "reach must be a number", "'high'")


# --------------------------------------------------------------------------- a trained run


def test_train_returns_the_finished_run(run):
    assert run.finished and run.checkpoints == [2, 4] and run.runs == [(1, 1e-3), (2, 1e-3)]
    assert run.config == hypermeta.configure("grid-world", "rnn-hn", **RUN_SETTINGS)
    assert run.summary["updates"] == 4 and set(run.summary["final_meta_episode_return"]) == {
        "seed=1,lr=0.001", "seed=2,lr=0.001"}
    metrics = run.metrics
    assert sorted(zip(metrics["seed"], metrics["update"], strict=True)) == [(1, 2), (1, 4), (2, 2), (2, 4)]
    assert (metrics["method"] == "rnn-hn").all() and not metrics["diverged"].any()
    final = metrics[metrics["update"] == 4].set_index("seed")["meta_episode_return"]
    assert final[2] == pytest.approx(run.summary["final_meta_episode_return"]["seed=2,lr=0.001"])
    assert list(run.final_returns) == [(1, 1e-3), (2, 1e-3)]
    assert run.final_returns[(2, 1e-3)] == pytest.approx(final[2])
    loaded = hypermeta.load_run(run.path)
    assert loaded == run and loaded.config == run.config and loaded.evaluations == []
    with pytest.raises(UsageError) as e:
        hypermeta.load_run(run.path / "nowhere")
    one_line_error(e, "no such run directory")


def test_metrics_without_pandas_is_one_line(run, monkeypatch):
    monkeypatch.delitem(sys.modules, "hypermeta.analysis.runs", raising=False)
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas fails as if not installed
    with pytest.raises(UsageError) as e:
        _ = hypermeta.Run(run.path).metrics
    one_line_error(e, "pandas", "pip install 'hypermeta[report]'")


def test_resume_refuses_what_the_command_refuses_and_continues(run, tmp_path):
    with pytest.raises(UsageError) as e:
        hypermeta.train(None, run.path, resume=True)
    one_line_error(e, str(run.path), "already finished")
    unfinished = tmp_path / "unfinished"
    shutil.copytree(run.path, unfinished)
    (unfinished / "summary.json").unlink()
    with pytest.raises(UsageError) as e:
        hypermeta.train(hypermeta.configure("grid-world", "rnn-hn", **{**RUN_SETTINGS, "frames": 480}), unfinished,
                        resume=True)
    one_line_error(e, "frames=480", "frames=240", "differs")
    assert not (unfinished / "summary.json").exists() and hypermeta.load_run(unfinished).final_returns == {}
    # The stored configuration (cfg None): its last checkpoint is its budget, so the run just finishes.
    resumed = hypermeta.train(None, unfinished, resume=True, progress=False)
    assert resumed.finished and resumed.summary["updates"] == 4 and resumed.config == run.config


def eval_tasks(env, seed: int, trials: int) -> np.ndarray:
    """The tasks `hypermeta eval --seed SEED --trials N` plays (`JaxCollector.evaluate_trials`'s resets)."""
    reset_key, _ = jax.random.split(jax.random.PRNGKey(seed))
    _, states = jax.vmap(TrialWrapper(env, env.episodes_per_trial).reset)(jax.random.split(reset_key, trials))
    return np.asarray(states.task)


def test_a_policy_in_a_python_loop_gets_the_returns_of_hypermeta_eval(run):
    """Seed 2's policy, driven one step at a time on the raw environment, plays the tasks of
    `hypermeta.evaluate(..., seed=3)` and earns each trial's per-episode returns of its trials.csv."""
    evaluation = hypermeta.evaluate(run, trials=4, seed=3, train_seeds=2, verbose=False)
    assert evaluation.path == run.path / "eval" / "update-4_episodes-4_trials-4_seed-3"
    assert list(evaluation.runs) == ["seed=2,lr=0.001"] and run.evaluations == [evaluation]
    with open(evaluation.path / "trials.csv", newline="") as f:
        expected = np.array([[float(r[f"episode_{k + 1}_return"]) for k in range(K)] for r in csv.DictReader(f)])
    policy = run.policy(seed=2)
    assert (policy.seed, policy.lr, policy.checkpoint, policy.episodes_per_trial) == (2, 1e-3, 4, K)
    env, key = policy.env, jax.random.PRNGKey(0)  # Grid-World's resets and steps use no randomness
    step = jax.jit(env.step)
    for trial, task in enumerate(eval_tasks(env, 3, 4)):
        policy.reset()
        obs, state = env.reset(key, task)
        reward, done, returns, episode = 0.0, False, np.zeros(K), 0
        while episode < K:
            action = policy.act(obs, reward=reward, done=done)
            assert action.shape == () and 0 <= int(action) < 5
            obs, state, reward, done, _ = step(key, state, action, task)
            returns[episode] += float(reward)
            episode += int(done)
            assert policy.trial_ends(done) == (episode == K)  # the trial's position, as the policy counts it
            if done:
                obs, state = env.reset(key, task)
        np.testing.assert_allclose(returns, expected[trial], atol=1e-4)


def assert_policy_replays_the_evaluation(policy, learner, params, norms, trials: int = 3) -> None:
    """Trials side by side, K episodes and past the trial's end into the next trial: every action
    and every latent (the encoder's memory) of the compiled evaluation, step by step."""
    from hypermeta.evaluation import evaluate_jax

    seen = evaluate_jax(learner, params, norms, jax.random.PRNGKey(5), trials, record=True)["steps"]
    env, keys = policy.env, jax.random.split(jax.random.PRNGKey(0), trials)
    tasks = eval_tasks(env, 5, trials)
    reset, step = jax.jit(jax.vmap(env.reset)), jax.jit(jax.vmap(env.step))
    obs, state = reset(keys, tasks)
    reward, done = np.zeros(trials), np.zeros(trials, bool)
    actions, latents = [], []
    assert policy.trial_ends(done).all()  # nothing acted yet: the first act starts the trials
    for _ in range(K * STEPS + 3):  # 3 steps of the next trial (same tasks): memory must start afresh
        actions.append(policy.act(obs, reward=reward, done=done, task=tasks if policy.needs_task else None))
        latents.append(policy.latent)
        obs, state, reward, done, _ = step(keys, state, actions[-1], tasks)
        np.testing.assert_array_equal(policy.trial_ends(done), np.asarray(done) & (len(actions) == K * STEPS))
        if done.all():  # Grid-World's episodes all last 15 steps
            obs, state = reset(keys, tasks)
    np.testing.assert_array_equal(np.array(actions[:K * STEPS]), seen["action"])
    np.testing.assert_allclose(np.array(latents[:K * STEPS]), seen["latent"], atol=1e-5)
    np.testing.assert_allclose(np.array(latents[K * STEPS:]), seen["latent"][:3], atol=1e-5)
    # Episode 2 starts on the start cell as episode 1 did: only the memory (and the done bit) tells them apart.
    assert np.abs(seen["latent"][STEPS] - seen["latent"][0]).max() > 1e-3


def test_a_batched_policy_takes_the_compiled_evaluations_actions_and_latents(run):
    from hypermeta.evaluation import open_run, restore_policies
    from hypermeta.training.learner import Learner

    rundir, cfg = open_run(run.path)
    params, norms = restore_policies(rundir, cfg, 4)
    rundir.close()
    policy = run.policy(seed=2, lr=1e-3, checkpoint=4)
    assert_policy_replays_the_evaluation(policy, Learner(cfg), *jax.tree.map(lambda x: x[1], (params, norms)))


def test_a_transformer_policy_keeps_and_resets_its_key_value_cache_as_the_evaluation():
    """Another sequence model's memory (a key/value cache over the trial), untrained parameters."""
    from hypermeta.policy import Policy
    from hypermeta.training.learner import Learner

    cfg = hypermeta.configure("grid-world", "rnn-hn", model={"sequence": "transformer", "latent_dim": 3}, **{
        k: v for k, v in RUN_SETTINGS.items() if k != "model"})
    learner = Learner(cfg)
    state = learner.init(7, 1e-3)
    policy = Policy(learner.agent, learner.env, state.params, state.norms, config=cfg, seed=7, lr=1e-3, checkpoint=0)
    assert_policy_replays_the_evaluation(policy, learner, state.params, state.norms, trials=2)


def test_policy_choices_and_inputs_are_checked(run):
    with pytest.raises(UsageError) as e:
        run.policy()
    one_line_error(e, "2 matching runs", "seed=1, lr=0.001", "seed=2, lr=0.001", "seed=")
    with pytest.raises(UsageError) as e:
        run.policy(seed=9)
    one_line_error(e, "seed=9", "no such run")
    with pytest.raises(UsageError) as e:
        run.policy(seed=1, checkpoint=3)
    one_line_error(e, "'3'", "2, 4")
    policy = run.policy(seed=1, checkpoint="2")
    assert policy.checkpoint == 2 and policy.observation_shape == (2,) and not policy.needs_task
    with pytest.raises(UsageError) as e:
        policy.act(np.zeros(3))  # the trial's observation, done bit included: the policy appends that itself
    one_line_error(e, "(3,)", "(2,)", "done bit")
    sampled = policy.act(np.zeros((2, 2)), key=jax.random.PRNGKey(1))
    assert sampled.shape == (2,) and sampled.dtype.kind == "i" and ((0 <= sampled) & (sampled < 5)).all()
    with pytest.raises(UsageError) as e:
        policy.act(np.zeros((3, 2)))
    one_line_error(e, "3 environments", "reset()")
    policy.reset([0])  # only environment 0 starts a new trial; the batch size stays
    assert policy.act(np.zeros((2, 2))).shape == (2,)
    policy.reset()
    assert policy.act(np.zeros((3, 2))).shape == (3,)
