"""Tests of Meta-World ML10 as a host environment: the task vector and the hidden goal,
trial semantics (same task for both episodes, a new one per trial, class cycling), the
test split, success reporting, the missing-extra error and a short training run."""

from __future__ import annotations

import csv
import dataclasses
import sys

import numpy as np
import pytest

from hypermeta.config import GRUConfig, ModelConfig
from hypermeta.envs.host import TrialEnv, make_vector_env
from hypermeta.envs.registry import ENVIRONMENTS, EnvSpec, make_env
from hypermeta.errors import UsageError
from hypermeta.families import ML10 as ML10_CONFIG
from hypermeta.families import family_defaults

metaworld = pytest.importorskip("metaworld")

from hypermeta.envs.ml10 import ML10  # noqa: E402

TRAIN_CLASSES = ["reach-v3", "push-v3", "pick-place-v3", "door-open-v3", "drawer-close-v3",
                 "button-press-topdown-v3", "peg-insert-side-v3", "window-open-v3", "sweep-v3", "basketball-v3"]
TEST_CLASSES = ["drawer-open-v3", "door-close-v3", "shelf-place-v3", "sweep-into-v3", "lever-pull-v3"]
SHORT = 5  # steps per episode in most tests


@pytest.fixture(scope="module")
def ml10() -> ML10:
    return ML10(max_episode_steps=SHORT)


def _class(task: np.ndarray) -> int:
    one_hot = task[:10]
    assert sorted(one_hot.tolist()) == [0.0] * 9 + [1.0]
    return int(np.argmax(one_hot))


def test_registry_and_paper_settings():
    env = make_env("ml10")
    assert isinstance(env, ML10)
    assert (env.episodes_per_trial, env.max_episode_steps, env.task_dim) == (2, 500, 13)
    assert env.observation_space.shape == (39,) and env.action_space.shape == (4,)
    cfg = family_defaults("ml10")
    p = cfg.ppo
    assert (p.num_envs, p.num_steps, p.epochs, p.minibatches) == (8, 600, 2, 8)
    assert (p.clip, p.entropy_coef, p.gamma, p.gae_lambda, p.reward_clip) == (0.1, 0.001, 0.97, 0.9, 1e5)
    assert cfg.frames == 100_000_000 and cfg.inference.state_decoder == (128, 64, 32)


def test_goal_is_hidden_and_in_the_task_vector(ml10):
    env = TrialEnv(ml10.make_task_env("train"), ml10.episodes_per_trial)
    obs, info = env.reset(seed=0)
    assert obs.shape == (40,) and obs.dtype == np.float32
    np.testing.assert_array_equal(obs[36:39], 0.0)  # Meta-World's ML setting: goal slots are zeros
    task = info["task"]
    goal = np.asarray(env.env.env._target_pos, np.float32)
    np.testing.assert_allclose(task[10:], goal)
    assert np.linalg.norm(goal) > 0.1
    assert TRAIN_CLASSES[_class(task)] == env.env.class_name


def test_task_fixed_within_a_trial_and_new_for_the_next(ml10):
    env = TrialEnv(ml10.make_task_env("train"), ml10.episodes_per_trial)
    obs, info = env.reset(seed=1)
    rng = np.random.default_rng(0)
    firsts, tasks, bits = [obs], [], []
    for _t in range(4 * SHORT):  # two trials
        obs, _, _, _, info = env.step(rng.uniform(-1, 1, 4))
        tasks.append(info["task"])
        if info["episode_done"]:
            firsts.append(obs)
            bits.append(obs[-1])
    assert bits == [1.0, 0.0, 1.0, 0.0]  # done bit only between the episodes of a trial
    np.testing.assert_array_equal(tasks[:2 * SHORT], [tasks[0]] * (2 * SHORT))
    np.testing.assert_array_equal(tasks[2 * SHORT:], [tasks[2 * SHORT]] * (2 * SHORT))
    assert not np.array_equal(tasks[0], tasks[2 * SHORT])
    # Episode 2 restarts the same MDP: same hand and object positions as episode 1.
    np.testing.assert_allclose(firsts[1][:39], firsts[0][:39], atol=1e-6)
    assert not np.allclose(firsts[2][:39], firsts[0][:39])  # another class, another scene


@pytest.mark.parametrize("split, n", [("train", 10), ("test", 5)])
def test_every_class_restarts_the_same_scene_in_episode_two(ml10, split, n):
    """For each class: the second episode starts where the first did (same task instance)."""
    for i in range(n):
        env = TrialEnv(ml10.make_task_env(split, evaluation_index=i), ml10.episodes_per_trial)
        first, _ = env.reset(seed=i)
        for _ in range(SHORT):
            obs, _, _, _, info = env.step(np.ones(4, np.float32))
        assert info["episode_done"] and not info["trial_done"], env.env.class_name
        np.testing.assert_allclose(obs[:39], first[:39], atol=1e-6, err_msg=env.env.class_name)
        assert not np.allclose(info["next_obs"][:18], first[:18])  # the hand did move in episode 1
        env.close()


def test_training_env_cycles_through_the_classes(ml10):
    task_env = ml10.make_task_env("train")
    rng = np.random.default_rng(3)
    classes = []
    for _ in range(30):
        task_env.sample_task(rng)
        classes.append(TRAIN_CLASSES.index(task_env.class_name))
    passes = [classes[i:i + 10] for i in range(0, 30, 10)]
    for p in passes:
        assert sorted(p) == list(range(10))  # every class once per pass
    assert len({tuple(p) for p in passes}) == 3  # reshuffled each pass
    task_env.close()


def test_test_split_and_evaluation_envs_cover_the_classes(ml10):
    envs = make_vector_env(ml10, "test", 10, evaluation=True)
    try:
        _, info = envs.reset(seed=0)
        np.testing.assert_array_equal(info["task"][:, :10], 0.0)  # no one-hot for test classes
        assert np.all(np.linalg.norm(info["task"][:, 10:], axis=1) > 0.1)
        names = envs.get_attr("env")
        assert [e.class_name for e in names] == TEST_CLASSES * 2
    finally:
        envs.close()
    train = make_vector_env(ml10, "train", 3, evaluation=True)
    try:
        _, info = train.reset(seed=0)
        assert [_class(t) for t in info["task"]] == [0, 1, 2]
    finally:
        train.close()


@pytest.mark.filterwarnings("ignore:Constant:UserWarning")  # the scripted policy's own gains
def test_success_reaches_the_trial_info():
    """Meta-World's scripted reach policy, shown the hidden goal (from the task vector),
    succeeds: `success` flows through TrialEnv."""
    from metaworld.policies import SawyerReachV3Policy

    env = TrialEnv(ML10(max_episode_steps=150).make_task_env("train", evaluation_index=0), 2)  # reach-v3
    obs, info = env.reset(seed=0)
    policy, successes = SawyerReachV3Policy(), []
    for _ in range(150):
        seen = np.concatenate([obs[:36], info.get("next_task", info["task"])[10:]]).astype(np.float64)
        obs, reward, _, _, info = env.step(policy.get_action(seen))
        successes.append(info["success"])
    assert max(successes) == 1.0 and successes[0] == 0.0
    assert info["episode_done"] and not info["trial_done"]


def test_missing_metaworld_is_a_usage_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "metaworld", None)  # import metaworld -> ImportError
    with pytest.raises(UsageError, match=r"'ml10' needs Meta-World.*pip install"):
        make_env("ml10")


def test_short_training_run_writes_train_and_test_metrics(monkeypatch, tmp_path):
    from hypermeta.training.loop import train

    monkeypatch.setitem(ENVIRONMENTS, "ml10", EnvSpec(lambda: ML10(max_episode_steps=25), "ml10", {}))
    cfg = dataclasses.replace(
        family_defaults("ml10"), method="rnn-hn", frames=2 * 2 * 30, eval_interval=1, eval_trials=2,
        model=ModelConfig(gru=GRUConfig(32), policy_state_embed=16, policy_latent_embed=8, policy_hidden=(32, 16),
                          encoder_action_embed=16, encoder_reward_embed=16),
        ppo=dataclasses.replace(ML10_CONFIG.ppo, num_envs=2, num_steps=30, minibatches=2),
    )
    run = train(cfg, tmp_path / "run", show_progress=False)
    rows = list(csv.DictReader(open(run.metrics_path)))
    assert [int(r["update"]) for r in rows] == [1, 2]
    for row in rows:
        for p in ("", "test_"):
            ret = float(row[f"{p}meta_episode_return"])
            assert 0 <= ret <= 2 * 25 * 10  # Meta-World rewards lie in [0, 10]
            assert 0 <= float(row[f"{p}success_rate"]) <= 1
        assert np.isfinite(float(row["value_loss"]))


def test_missing_metaworld_fails_before_a_run_directory_exists(monkeypatch, tmp_path, capsys):
    from hypermeta.cli import main

    monkeypatch.setitem(sys.modules, "metaworld", None)
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--env", "ml10", "--out", str(tmp_path / "run")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "pip install" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()
