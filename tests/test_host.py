"""Tests of the host-side path: gymnasium trial streams (`TrialEnv`), the host collector
against the JAX path, host evaluation with success rates, and training through `train()`."""

from __future__ import annotations

import csv
import dataclasses
from dataclasses import dataclass

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hypermeta.config import GRUConfig, ModelConfig, PPOConfig, TrainConfig
from hypermeta.envs.base import Box, Environment
from hypermeta.envs.grid_world import GridWorld
from hypermeta.envs.host import HostEnvironment, JaxOnHost, JaxTaskEnv, TrialEnv, make_vector_env
from hypermeta.envs.registry import ENVIRONMENTS, EnvSpec
from hypermeta.training.collectors.host_collector import HostCollector
from hypermeta.training.learner import Learner
from hypermeta.training.loop import Stopped, train

MODEL = ModelConfig(gru=GRUConfig(32), policy_state_embed=16, policy_latent_embed=8, policy_hidden=(32, 16))


# --------------------------------------------------------------------------- a toy task env


class Counter(gymnasium.Env):
    """Task c in {1, 2, ...} drawn from rng; obs = [c * 10 + step]; episodes of `length`
    steps; reward = the action x `scale`; success when the action is 3."""

    def __init__(self, length: int = 3, scale: float = 1.0):
        self.length, self.scale = length, scale
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
        return obs, float(action) * self.scale, False, self.t >= self.length, {"success": float(action == 3)}


@dataclass(frozen=True)
class CounterEnv(HostEnvironment):
    episodes_per_trial: int = 2
    max_episode_steps: int = 5  # the longest evaluation env's
    splits: tuple[str, ...] = ("train", "test")
    reports_success: bool = True

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
        """Evaluation env i has episodes of 3 + i steps; the test split pays 10x."""
        return Counter(3 + (evaluation_index or 0), 10.0 if split == "test" else 1.0)


def test_trial_env_k_episodes_then_new_task():
    env = TrialEnv(Counter(length=3), episodes_per_trial=2)
    obs, info = env.reset(seed=5)
    c = info["task"][0]
    assert obs.tolist() == [c * 10, 0.0]  # first obs of the trial, done bit 0
    seen = []
    for _t in range(6):
        obs, reward, terminated, truncated, info = env.step(1)
        seen.append((obs.tolist(), info["episode"], info["episode_done"], info["trial_done"], info["task"][0],
                     info["next_obs"].tolist(), info["next_task"][0]))
        assert not terminated and not truncated  # the stream never stops
    # Episode 0: steps 1, 2, then the end: the new episode's first obs with done bit 1.
    # next_obs carries the done bit of the episode end (as TrialWrapper's).
    assert seen[0] == ([c * 10 + 1, 0.0], 0, False, False, c, [c * 10 + 1, 0.0], c)
    assert seen[2][:4] == ([c * 10, 1.0], 0, True, False) and seen[2][5] == [c * 10 + 3, 1.0]
    # Episode 1 ends the trial: a new task, its first obs, done bit 0; next_obs is the old MDP's.
    obs6, ep, ep_done, trial_done, task, next_obs, next_task = seen[5]
    assert (ep, ep_done, trial_done, task, next_obs) == (1, True, True, c, [c * 10 + 3, 1.0])
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
        for _t in range(7):
            obs, reward, _, _, info = envs.step(np.array([1, 2, 3]))
            trace += [obs, reward, info["trial_done"], info["success"]]
        envs.close()
        out[strategy] = trace
    for a, b in zip(out["sync"], out["async"], strict=True):
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


@dataclass(frozen=True)
class PlainGrid(GridWorld):
    """Grid-World without per-cell reward decoding (the host path reports no cells)."""

    @property
    def num_cells(self) -> int:  # type: ignore[override]
        return 0


@dataclass(frozen=True)
class Point(Environment):
    """A continuous-action JAX env: a point on a line moves by the clipped action; reward
    -|position - goal|; the goal ~ U(-1, 1) is the task; 10 steps per episode, 2 per trial."""

    episodes_per_trial: int = 2
    max_episode_steps: int = 10

    @property
    def observation_space(self) -> Box:
        return Box(-np.inf, np.inf, (1,))

    @property
    def action_space(self) -> Box:
        return Box(-1.0, 1.0, (1,))

    @property
    def task_dim(self) -> int:
        return 1

    def sample_task(self, key):
        return jax.random.uniform(key, (1,), minval=-1.0, maxval=1.0)

    def reset(self, key, task):
        return jnp.zeros((1,)), (jnp.zeros((1,)), jnp.zeros((), jnp.int32))

    def step(self, key, state, action, task):
        pos, t = state
        pos = pos + 0.2 * jnp.clip(action, -1.0, 1.0)
        return pos, (pos, t + 1), -jnp.abs(pos - task)[0], t + 1 >= self.max_episode_steps, {}


def _jax_rollouts(cfg: TrainConfig, env=None, seeds: tuple[int, ...] | None = None):
    """The JAX path's rollouts of one run per seed, update by update (`Learner.train_update`
    spelled out) on `env` (default: `cfg.env`'s); returns [(initial tasks, rollouts, final state)] per seed."""
    learner = Learner(cfg, env=env)

    @jax.jit
    def update(state):
        key, collect_key, update_key = jax.random.split(state.key, 3)
        carry, rollout = learner.collector.collect(learner.agent, state.params, state.norms, state.carry,
                                                   jax.random.split(collect_key, cfg.ppo.num_steps),
                                                   use_task=learner.pretraining(state))
        state, _ = learner.learn(state.replace(key=key), rollout, carry, update_key)
        return state, rollout

    out = []
    for seed in seeds or cfg.seeds:
        state = jax.jit(learner.init)(np.int32(seed), np.float32(cfg.lr[0]))
        initial_tasks = np.asarray(state.carry.trial_state.task)
        rollouts = []
        for _ in range(UPDATES):
            state, rollout = update(state)
            rollouts.append(jax.tree.map(np.asarray, rollout))
        out.append((initial_tasks, rollouts, state))
    return out


def _trial_tasks(initial_tasks, rollouts) -> list:
    """Each env's trial tasks in order: the first, then the task at every later trial start."""
    tasks = np.concatenate([r.task for r in rollouts])  # (U*T, E, task_dim)
    starts = np.concatenate([r.reset for r in rollouts])
    pad = [np.zeros(tasks.shape[-1])] * 2
    return [[initial_tasks[e]] + [tasks[t, e] for t in range(1, len(tasks)) if starts[t, e]] + pad
            for e in range(tasks.shape[1])]


@pytest.mark.parametrize("method, env_cls, seeds", [
    ("rnn-hn", GridWorld, (7,)),
    ("rnn-hn", Point, (7,)),  # Gaussian actions, trials of 20 steps
    # Two runs side by side; VariBAD's trial buffer and re-encoded hidden states; all three
    # updates in pre-training, where the policy reads the true task of every step.
    ("ti-pp-hn", PlainGrid, (7, 8)),
])
def test_host_collector_reproduces_the_jax_path(method, env_cls, seeds):
    """Same seed, same tasks: the host collector's rollouts and the trained parameters equal
    the JAX path's, over updates whose rollouts cut trials in the middle."""
    cfg = dataclasses.replace(EQUAL_CFG, env="jax-grid", method=method, seeds=seeds,
                              model=dataclasses.replace(MODEL, encoder_action_embed=4))
    reference = _jax_rollouts(cfg, env=env_cls())
    per_env = tuple(t for initial, rollouts, _ in reference for t in _trial_tasks(initial, rollouts))
    assert min(len(t) for t in per_env) >= 4  # several trials per env in the window

    _built[0] = 0
    learner = Learner(dataclasses.replace(cfg, env="grid-host"), env=ScriptedGrid(env_cls(), per_env))
    trainer = learner.collector
    assert isinstance(trainer, HostCollector)
    learner.compile_chunk()
    try:
        states = trainer.start(learner.init_runs(list(seeds), [cfg.lr[0]] * len(seeds)))
        for u in range(UPDATES):
            states, host, carry, update_key = trainer.collect_runs(states)
            for r, (_, rollouts, _) in enumerate(reference):
                for field in dataclasses.fields(host):
                    if field.name in ("cell", "cell_hit"):
                        continue  # the host path does not report cells
                    got, want = np.asarray(getattr(host, field.name))[r], getattr(rollouts[u], field.name)
                    assert got.shape == want.shape and got.dtype == want.dtype, field.name
                    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=f"run {r} update {u}: {field.name}")
            states, _ = trainer._learn(states, host, jax.tree.map(np.asarray, carry), update_key)
    finally:
        trainer.close()
    for r, (_, _, jax_state) in enumerate(reference):
        for a, b in zip(jax.tree.leaves(jax_state.params), jax.tree.leaves(states.params), strict=True):
            np.testing.assert_allclose(np.asarray(b)[r], np.asarray(a), rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------- evaluation and train()


COUNTER_CFG = TrainConfig(env="counter", method="rnn", model=MODEL, seeds=(1, 2), frames=2 * 4 * 6,
                          ppo=PPOConfig(num_envs=4, num_steps=6, minibatches=2), eval_interval=1, eval_trials=3)


@pytest.fixture
def counter(monkeypatch):
    """The counter env registered as "counter" (`train()` builds its environment from the config's name)."""
    monkeypatch.setitem(ENVIRONMENTS, "counter", EnvSpec(lambda: CounterEnv(), "grid-world", {}))


def host_collector(learner: Learner, num_runs: int) -> HostCollector:
    """The learner's host collector, compiled and with the environments of `num_runs` runs."""
    collector = learner.collector
    assert isinstance(collector, HostCollector)
    learner.compile_chunk()
    collector.open_envs(num_runs)
    return collector


def _scripted_eval(trainer: HostCollector, actions) -> None:
    """Replace the evaluation policy by a script of actions (one per step, for every env)."""
    script = iter(actions)
    trainer._eval_policy = lambda params, norms, carry: (carry.hidden, np.full(3, next(script)), np.zeros((3, 5)))


def test_host_evaluation_plays_one_trial_per_env_and_counts_success_at_any_step():
    learner = Learner(COUNTER_CFG, env=CounterEnv())
    trainer = host_collector(learner, num_runs=1)
    try:
        # Episodes of 3, 4 and 5 steps: trials end at steps 6, 8 and 10. Steps after an env's
        # trial end (its next trial) must not count.
        _scripted_eval(trainer, [1] * 10)
        returns, successes = trainer.evaluate_run("train", None, None, seed=0)
        np.testing.assert_array_equal(returns, [[3, 3], [4, 4], [5, 5]])
        np.testing.assert_array_equal(successes, 0)
        # Success (action 3) on one middle step of the second episode only.
        _scripted_eval(trainer, [0, 0, 0, 0, 3] + [0] * 5)
        returns, successes = trainer.evaluate_run("train", None, None, seed=0)
        np.testing.assert_array_equal(returns, [[0, 3], [0, 3], [3, 0]])  # step 5 ends env 2's first episode
        np.testing.assert_array_equal(successes, [[0, 1], [0, 1], [1, 0]])
        # evaluate(): the first split unprefixed, the others prefixed; one value per run.
        _scripted_eval(trainer, [1] * 20)
        metrics = trainer.evaluate_runs(jax.tree.map(lambda x: x[None], learner.init(np.int32(0), np.float32(1e-3))),
                                   np.array([0]))
        np.testing.assert_allclose(metrics["episode_returns"], [[4, 4]])  # mean over envs of 3, 4, 5
        np.testing.assert_allclose(metrics["meta_episode_return"], [8])
        np.testing.assert_allclose(metrics["test_meta_episode_return"], [80])  # the test split pays 10x
        np.testing.assert_allclose(metrics["success_rate"], [0])
    finally:
        trainer.close()


def test_host_evaluation_matches_the_jax_evaluation():
    """Grid-World through the host path, with the JAX evaluation's tasks, scores what
    `Learner.evaluate` scores with the same parameters (a trained-for-3-updates policy)."""
    [(_, _, state)] = _jax_rollouts(EQUAL_CFG)
    learner = Learner(EQUAL_CFG)
    key = jax.random.PRNGKey(5)
    want = np.asarray(jax.jit(learner.evaluate)(state.params, state.norms, key))
    reset_key, _ = jax.random.split(key)
    carry = learner.collector.initial_carry(learner.agent, reset_key, EQUAL_CFG.eval_trials)
    tasks = np.asarray(carry.trial_state.task)

    @dataclass(frozen=True)
    class EvalGrid(JaxOnHost):
        def make_task_env(self, split, evaluation_index=None):
            return ScriptedTaskEnv(self.env, [tasks[evaluation_index or 0], [0, 0]])

    trainer = host_collector(Learner(dataclasses.replace(EQUAL_CFG, env="grid-host"), env=EvalGrid(GridWorld())),
                             num_runs=1)
    try:
        returns, successes = trainer.evaluate_run("train", state.params, state.norms, seed=0)
    finally:
        trainer.close()
    np.testing.assert_allclose(returns.mean(axis=0), want, rtol=1e-5, atol=1e-5)
    assert returns.shape == (EQUAL_CFG.eval_trials, 4) and np.all(successes == 0)


def test_host_run_stops_resumes_and_writes_split_metrics(counter, tmp_path, monkeypatch):
    """train() on a host env: Ctrl-C between chunks saves a checkpoint; the resumed run
    restarts its host envs' trials and completes with one metrics row per update, with
    returns and success rates of both task sets, and a curve with both panels."""
    cfg = dataclasses.replace(COUNTER_CFG, frames=4 * 4 * 6, checkpoint_interval=1)
    original, calls = HostCollector.chunk, [0]

    def interrupted(self, states, n):
        calls[0] += 1
        if calls[0] == 3:
            raise KeyboardInterrupt
        return original(self, states, n)

    monkeypatch.setattr(HostCollector, "chunk", interrupted)
    with pytest.raises(Stopped, match="stopped at update 2/4"):
        train(cfg, tmp_path / "run", show_progress=False)
    monkeypatch.setattr(HostCollector, "chunk", original)
    run = train(cfg, tmp_path / "run", resume=True, show_progress=False)
    rows = list(csv.DictReader(open(run.metrics_path)))
    for seed in cfg.seeds:
        assert [int(r["update"]) for r in rows if int(r["seed"]) == seed] == [1, 2, 3, 4]
    for row in rows:
        for p in ("", "test_"):
            ret = float(row[f"{p}meta_episode_return"])
            # Actions 0..4; evaluation episodes of 3, 4 and 5 steps (mean 4), 2 per trial.
            assert 0 <= ret <= (4 * 4 * 2) * (10 if p else 1) + 1e-9
            assert ret == pytest.approx(float(row[f"{p}episode_1_return"]) + float(row[f"{p}episode_2_return"]))
            rate = float(row[f"{p}success_rate"])
            assert 0 <= rate <= 1
            assert rate == pytest.approx((float(row[f"{p}episode_1_success"]) + float(row[f"{p}episode_2_success"])) / 2)
        assert np.isfinite(float(row["policy_loss"]))
    assert (tmp_path / "run" / "summary.json").exists()
    assert (tmp_path / "run" / "curve.png").stat().st_size > 10_000  # returns and success panels
