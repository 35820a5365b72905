"""Tests of the host-side path: gymnasium trial streams (`TrialEnv`), the host collector
against the JAX path, host evaluation with success rates, and training through `train()`."""

from __future__ import annotations

import csv
import dataclasses
from dataclasses import dataclass

import gymnasium
import jax
import numpy as np
import pytest

from hypermeta.config import GRID_WORLD, ModelConfig, PPOConfig, TrainConfig
from hypermeta.envs.base import Box
from hypermeta.envs.grid_world import GridWorld
from hypermeta.envs.host import HostEnvironment, JaxOnHost, JaxTaskEnv, TrialEnv, make_vector_env
from hypermeta.envs.registry import ENVIRONMENTS, EnvSpec
from hypermeta.training import rollout as jax_rollout
from hypermeta.training.host import HostTrainer
from hypermeta.training.learner import Learner
from hypermeta.training.loop import train

MODEL = ModelConfig(gru_size=32, policy_state_embed=16, policy_latent_embed=8, policy_hidden=(32, 16))


# --------------------------------------------------------------------------- a toy task env


class Counter(gymnasium.Env):
    """Task c in {1, 2, ...} drawn from rng; obs = [c * 10 + step]; episodes of `length`
    steps; reward = the action; success when the action equals the task."""

    def __init__(self, length: int = 3):
        self.length = length
        self.observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (1,), np.float32)
        self.action_space = gymnasium.spaces.Discrete(5)
        self.c, self.t, self.resets = 0, 0, 0

    @property
    def task(self) -> np.ndarray:
        return np.array([self.c], np.float32)

    def sample_task(self, rng: np.random.Generator) -> None:
        self.c = int(rng.integers(1, 1000))

    def reset(self, *, seed=None, options=None):
        self.t, self.resets = 0, self.resets + 1
        return np.array([self.c * 10], np.float32), {}

    def step(self, action):
        self.t += 1
        obs = np.array([self.c * 10 + self.t], np.float32)
        return obs, float(action), False, self.t >= self.length, {"success": float(action == 3)}


@dataclass(frozen=True)
class CounterEnv(HostEnvironment):
    episodes_per_trial: int = 2
    max_episode_steps: int = 3
    splits: tuple[str, ...] = ("train", "test")

    @property
    def observation_space(self) -> Box:
        return Box(-np.inf, np.inf, (1,))

    @property
    def action_space(self):
        from hypermeta.envs.base import Discrete

        return Discrete(5)

    @property
    def task_dim(self) -> int:
        return 1

    def make_task_env(self, split, evaluation_index=None):
        return Counter(self.max_episode_steps)


def test_trial_env_k_episodes_then_new_task():
    env = TrialEnv(Counter(length=3), episodes_per_trial=2)
    obs, info = env.reset(seed=5)
    c = info["task"][0]
    assert obs.tolist() == [c * 10, 0.0]  # first obs of the trial, done bit 0
    seen = []
    for t in range(6):
        obs, reward, terminated, truncated, info = env.step(1)
        seen.append((obs.tolist(), info["episode"], info["episode_done"], info["trial_done"], info["task"][0],
                     info["next_obs"].tolist(), info["next_task"][0]))
        assert not terminated and not truncated  # the stream never stops
    # Episode 0: steps 1, 2, then the end: the new episode's first obs with done bit 1.
    assert seen[0] == ([c * 10 + 1, 0.0], 0, False, False, c, [c * 10 + 1], c)
    assert seen[2][:4] == ([c * 10, 1.0], 0, True, False) and seen[2][5] == [c * 10 + 3]
    # Episode 1 ends the trial: a new task, its first obs, done bit 0; next_obs is the old MDP's.
    obs6, ep, ep_done, trial_done, task, next_obs, next_task = seen[5]
    assert (ep, ep_done, trial_done, task, next_obs) == (1, True, True, c, [c * 10 + 3])
    assert next_task != c and obs6 == [next_task * 10, 0.0]
    assert env.env.resets == 3  # trial start, episode 2, next trial


def test_trial_env_single_episode_has_no_done_bit():
    env = TrialEnv(Counter(length=2), episodes_per_trial=1)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (1,) and env.observation_space.shape == (1,)
    env.step(0)
    _, _, _, _, info = env.step(0)
    assert info["trial_done"] and info["next_task"][0] != info["task"][0]


def test_trial_env_seed_reproduces_tasks():
    tasks = []
    for _ in range(2):
        env = TrialEnv(Counter(length=1), episodes_per_trial=1)
        _, info = env.reset(seed=11)
        tasks.append([info["task"][0]] + [env.step(0)[4]["next_task"][0] for _ in range(5)])
    assert tasks[0] == tasks[1] and len(set(tasks[0])) > 1


def test_vector_env_rejects_unknown_split_and_strategy():
    with pytest.raises(ValueError, match="unknown split 'valid'.*train, test"):
        make_vector_env(CounterEnv(), "valid", 2)
    with pytest.raises(ValueError, match="unknown vector strategy 'threads'"):
        make_vector_env(CounterEnv(), "train", 2, strategy="threads")


def test_async_vector_env_matches_sync():
    out = {}
    for strategy in ("sync", "async"):
        envs = make_vector_env(CounterEnv(), "train", 3, strategy)
        obs, _ = envs.reset(seed=3)
        trace = [obs]
        for t in range(7):
            obs, reward, _, _, info = envs.step(np.array([1, 2, 3]))
            trace += [obs, reward, info["trial_done"], info["success"]]
        envs.close()
        out[strategy] = trace
    for a, b in zip(out["sync"], out["async"]):
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------- host vs JAX


class ScriptedTaskEnv(JaxTaskEnv):
    """A JAX env on the host whose trials get the tasks the JAX path drew (from a list):
    host envs draw tasks with numpy, so this is how the same seed meets the same tasks."""

    def __init__(self, env, tasks):
        super().__init__(env)
        self.tasks = list(tasks)

    def sample_task(self, rng):
        self._task = np.asarray(self.tasks.pop(0), np.float32)


@dataclass(frozen=True)
class ScriptedGrid(JaxOnHost):
    tasks: tuple = ()  # per training env, its trials' tasks in order

    def make_task_env(self, split, evaluation_index=None):
        if evaluation_index is not None:
            return JaxTaskEnv(self.env)
        return ScriptedTaskEnv(self.env, self.tasks[_next_env()])


_built = [0]


def _next_env() -> int:
    _built[0] += 1
    return _built[0] - 1


EQUAL_CFG = TrainConfig(env="grid-world", method="rnn-hn", model=MODEL, seeds=(7,), lr=(1e-3,),
                        ppo=PPOConfig(num_envs=4, num_steps=45, minibatches=2), eval_trials=2)
UPDATES = 3  # 135 steps: trials of 60 steps span rollouts


def _jax_rollouts(cfg: TrainConfig):
    """The JAX path's rollouts, update by update (`Learner.train_update` spelled out)."""
    learner = Learner(cfg)
    state = jax.jit(learner.init)(np.int32(cfg.seeds[0]), np.float32(cfg.lr[0]))
    initial_tasks = np.asarray(state.carry.trial_state.task)

    @jax.jit
    def update(state):
        key, collect_key, update_key = jax.random.split(state.key, 3)
        carry, rollout = jax_rollout.collect(learner.wrapper, learner.agent, state.params, state.norms, state.carry,
                                             collect_key, cfg.ppo.num_steps)
        state, _ = learner.learn(state.replace(key=key), rollout, carry, update_key)
        return state, rollout

    rollouts = []
    for _ in range(UPDATES):
        state, rollout = update(state)
        rollouts.append(jax.tree.map(np.asarray, rollout))
    return initial_tasks, rollouts, state


def test_host_collector_reproduces_the_jax_path(monkeypatch):
    """Same seed, same tasks: the host collector's rollouts and the trained parameters equal
    the JAX path's, over updates whose rollouts cut trials in the middle."""
    initial_tasks, rollouts, jax_state = _jax_rollouts(EQUAL_CFG)
    # Each env's trial tasks in order: the first, then the task at every later trial start.
    tasks = np.concatenate([r.task for r in rollouts])  # (U*T, E, 2)
    starts = np.concatenate([r.reset for r in rollouts])
    per_env = tuple([initial_tasks[e]] + [tasks[t, e] for t in range(1, len(tasks)) if starts[t, e]] + [[0, 0]] * 2
                    for e in range(EQUAL_CFG.ppo.num_envs))
    assert min(len(t) for t in per_env) >= 4  # several trials per env in the window

    _built[0] = 0
    monkeypatch.setitem(ENVIRONMENTS, "grid-host", EnvSpec(lambda: ScriptedGrid(GridWorld(), per_env), GRID_WORLD, {}))
    learner = Learner(dataclasses.replace(EQUAL_CFG, env="grid-host"))
    trainer = HostTrainer(learner, num_runs=1)
    try:
        states = trainer.start(learner.init_runs(list(EQUAL_CFG.seeds), list(EQUAL_CFG.lr)))
        for u in range(UPDATES):
            states, host, carry, update_key = trainer.collect(states)
            for field in dataclasses.fields(host):
                got, want = np.asarray(getattr(host, field.name))[0], getattr(rollouts[u], field.name)
                if field.name in ("cell", "cell_hit"):
                    continue  # the host path does not report cells
                assert got.shape == want.shape and got.dtype == want.dtype, field.name
                np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=f"update {u}: {field.name}")
            states, _ = trainer._learn(states, host, jax.tree.map(np.asarray, carry), update_key)
    finally:
        trainer.close()
    for a, b in zip(jax.tree.leaves(jax_state.params), jax.tree.leaves(states.params)):
        np.testing.assert_allclose(np.asarray(b)[0], np.asarray(a), rtol=1e-4, atol=1e-6)


# --------------------------------------------------------------------------- evaluation and train()


COUNTER_CFG = TrainConfig(env="counter", method="rnn", model=MODEL, seeds=(1, 2), frames=2 * 4 * 6,
                          ppo=PPOConfig(num_envs=4, num_steps=6, minibatches=2), eval_interval=1, eval_trials=3)


@pytest.fixture
def counter(monkeypatch):
    monkeypatch.setitem(ENVIRONMENTS, "counter", EnvSpec(lambda: CounterEnv(), GRID_WORLD, {}))


def test_host_evaluation_counts_success_at_any_step(counter):
    learner = Learner(COUNTER_CFG)
    trainer = HostTrainer(learner, num_runs=1)
    try:
        # A policy that plays 3 (success) exactly on the second step of the second episode.
        script = iter([0, 0, 0, 0, 3, 0])
        trainer._eval_policy = lambda params, norms, carry: (carry.hidden, np.full(3, next(script)), np.zeros((3, 5)))
        returns, successes = trainer.evaluate_run("test", None, None, seed=0)
    finally:
        trainer.close()
    np.testing.assert_array_equal(returns, [[0, 3]] * 3)  # reward = action, episode by episode
    np.testing.assert_array_equal(successes, [[0, 1]] * 3)


def test_train_on_a_host_env_writes_split_metrics(counter, tmp_path):
    run = train(COUNTER_CFG, tmp_path / "run", show_progress=False)
    rows = list(csv.DictReader(open(run.metrics_path)))
    assert len(rows) == 2 * 2  # 2 updates x 2 seeds
    for row in rows:
        for p in ("", "test_"):
            ret = float(row[f"{p}meta_episode_return"])
            assert 0 <= ret <= 4 * 3 * 2  # actions 0..4, 3 steps, 2 episodes
            assert ret == pytest.approx(float(row[f"{p}episode_1_return"]) + float(row[f"{p}episode_2_return"]))
            rate = float(row[f"{p}success_rate"])
            assert 0 <= rate <= 1
            assert rate == pytest.approx((float(row[f"{p}episode_1_success"]) + float(row[f"{p}episode_2_success"])) / 2)
        assert np.isfinite(float(row["policy_loss"]))
    assert (tmp_path / "run" / "summary.json").exists()
