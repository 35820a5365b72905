"""XLand-MiniGrid through the adapter (`--env xland:ENV_ID`), on small benchmarks made with
xminigrid's own ruleset generator (tests/data/xland/README.md): equal to xminigrid's API step
by step, rulesets per trial, trial starts and hidden-state resets through our collector,
vmapped runs, 1,024 jitted environments, and the one-line errors."""

from __future__ import annotations

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("xminigrid")

from hypermeta.config import GRUConfig, ModelConfig, PPOConfig, TrainConfig  # noqa: E402
from hypermeta.envs.registry import env_spec, make_env  # noqa: E402
from hypermeta.envs.trial import TrialWrapper  # noqa: E402
from hypermeta.errors import UsageError  # noqa: E402
from hypermeta.training.learner import Learner  # noqa: E402

DATA = Path(__file__).parent / "data" / "xland"
# The "trivial" generator settings (XLand's trivial-21k: a goal, 3 distractors), 2 episodes of 30 steps.
NAME = f"xland:XLand-MiniGrid-R1-9x9:benchmark={DATA / 'trivial-500'},episodes=2,max-steps=30"
ENVS, STEPS = 16, 120


@pytest.fixture(scope="module")
def env():
    return make_env(NAME)


def test_settings_and_the_task_vector(env):
    """The task is the ruleset's encoding: goal (5), rules (R x 7), initial tiles (T x 2); a
    benchmark of the "small" settings has rules (R = 4, T = 9)."""
    from xminigrid.benchmarks import load_benchmark_from_path

    assert (env.episodes_per_trial, env.max_episode_steps, env.num_rulesets) == (2, 30, 500)
    assert env.task_dim == 5 + 1 * 7 + 5 * 2 and env.observation_space.shape == (5 * 5 * 25 + 4,)
    small = make_env("xland:XLand-MiniGrid-R1-9x9:benchmark=" + str(DATA / "small-200"))
    assert small.task_dim == 5 + 4 * 7 + 9 * 2 and small.num_rulesets == 200
    bench = load_benchmark_from_path(str(DATA / "small-200"))
    for i in (0, 17, 199):
        ruleset = small.ruleset(small.ruleset_vector(i))
        for ours, theirs in zip(jax.tree.leaves(ruleset), jax.tree.leaves(bench.get_ruleset(i)), strict=True):
            np.testing.assert_array_equal(ours, theirs)
    assert (small.episodes_per_trial, small.max_episode_steps) == (10, 243)  # XLand's defaults


def decode(obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(tile and colour ids (..., 5, 5, 2), direction) of our one-hot observations."""
    cells = obs[..., :625].reshape(*obs.shape[:-1], 5, 5, 25)
    return np.stack([cells[..., :13].argmax(-1), cells[..., 13:].argmax(-1)], -1), obs[..., 625:].argmax(-1)


def test_trials_equal_xminigrid_step_by_step(env):
    """Replays 16 trial streams with xminigrid's `reset`/`step` and `Benchmark.sample_ruleset`
    (keys split as the trial wrapper splits them): the same views, directions, rewards and
    episode ends, the same ruleset within a trial and a new draw after it."""
    import xminigrid
    from xminigrid.benchmarks import load_benchmark_from_path

    trial = TrialWrapper(env, 2)
    actions = jax.random.randint(jax.random.PRNGKey(5), (STEPS, ENVS), 0, 6)
    keys = jax.random.split(jax.random.PRNGKey(4), ENVS)

    @jax.jit
    def ours(keys, actions):
        obs0, state = jax.vmap(trial.reset)(keys)

        def step(state, inputs):
            k, a = inputs
            obs, state, reward, done, info = jax.vmap(trial.step)(k, state, a)
            return state, (obs, reward, done, info["next_obs"], info["timeout"])

        step_keys = jax.vmap(lambda k: jax.random.split(jax.random.fold_in(k, 1), STEPS))(keys).swapaxes(0, 1)
        return obs0, jax.lax.scan(step, state, (step_keys, actions))[1], step_keys

    obs0, (obs, reward, done, next_obs, timeout), step_keys = jax.tree.map(np.asarray, ours(keys, actions))
    bench = load_benchmark_from_path(str(DATA / "trivial-500"))
    genv, base = xminigrid.make("XLand-MiniGrid-R1-9x9")
    base = base.replace(max_steps=30)

    def start(task_key, key):
        params = base.replace(ruleset=bench.sample_ruleset(task_key))
        return params, genv.reset(params, key)

    def select(flag, a, b):
        return jax.tree.map(lambda x, y: jnp.where(flag.reshape(-1, *[1] * (x.ndim - 1)), x, y), a, b)

    @jax.jit
    def reference_step(params, ts, episode, action, key):
        """xminigrid's step; at an episode end its reset, with a new ruleset after the K-th."""
        ts = jax.vmap(genv.step)(params, ts, action)
        episode = episode + ts.last()
        _, reset_key, task_key = jnp.moveaxis(jax.vmap(lambda k: jax.random.split(k, 3))(key), 1, 0)
        same_ts = jax.vmap(genv.reset)(params, reset_key)  # the next episode: the same ruleset
        new_params, new_ts = jax.vmap(start)(task_key, reset_key)  # the next trial: a new ruleset
        trial_end = episode == 2
        following = select(ts.last(), select(trial_end, new_ts, same_ts), ts)
        return select(trial_end, new_params, params), following, jnp.where(trial_end, 0, episode), ts, trial_end

    splits = jax.vmap(jax.random.split)(keys)
    params, ts = jax.jit(jax.vmap(start))(splits[:, 0], splits[:, 1])
    episode = jnp.zeros(ENVS, jnp.int32)
    np.testing.assert_array_equal(decode(obs0)[0], ts.observation)
    for t in range(STEPS):
        params, ts, episode, stepped, trial_end = reference_step(params, ts, episode, actions[t], step_keys[t])
        np.testing.assert_array_equal(reward[t], stepped.reward)
        np.testing.assert_array_equal(done[t], trial_end)
        # a trial that ends at XLand's time limit (not at its goal) is a timeout
        np.testing.assert_array_equal(timeout[t], np.asarray(trial_end & (stepped.discount > 0)))
        np.testing.assert_array_equal(decode(next_obs[t])[0], stepped.observation)
        views, direction = decode(obs[t])
        np.testing.assert_array_equal(views, ts.observation)
        np.testing.assert_array_equal(direction, ts.state.agent.direction)
    assert (reward > 0).sum() >= 1 and done.sum() >= 2 * ENVS  # a goal was reached (its reward matched), trials ended


@pytest.fixture(scope="module")
def learner(env):
    cfg = TrainConfig(env=NAME, method="rnn-hn", seeds=(1, 2), lr=(1e-3, 1e-3), eval_trials=4,
                      model=ModelConfig(gru=GRUConfig(16), encoder_state_embed=8, policy_state_embed=8,
                                        policy_latent_embed=4, policy_hidden=(16,)),
                      ppo=PPOConfig(num_envs=4, num_steps=64, minibatches=2, epochs=1))
    return Learner(cfg, env=env)


def test_trial_starts_and_hidden_state_resets_through_the_collector(learner):
    """A rollout of our collector: a trial starts exactly after the step that ends the
    adapter's K-th episode, and there the encoder starts from its initial carry (its latent
    equals a fresh encoder's on the same inputs)."""
    state = learner.init(jnp.asarray(0), jnp.asarray(1e-3))
    keys = jax.random.split(jax.random.PRNGKey(9), 64)
    collect = jax.jit(lambda s, k: learner.collector.collect(learner.agent, s.params, s.norms, s.carry, k)[1])
    r = collect(state, keys)
    reset, done, episode = np.asarray(r.reset), np.asarray(r.done), np.asarray(r.episode)
    assert reset[0].all() and done.sum() >= 4
    np.testing.assert_array_equal(reset[1:], done[:-1])
    assert (episode[done] == 1).all() and (episode[reset] == 0).all()
    task = np.asarray(r.task)
    within = ~reset[1:]
    np.testing.assert_array_equal(task[1:][within], task[:-1][within])
    assert (task[1:][reset[1:]] != task[:-1][reset[1:]]).any(-1).all()  # a new ruleset each trial
    fresh = learner.agent.initial_carry((4,))
    for t in np.flatnonzero(reset[1:].any(-1)) + 1:
        inputs = jax.tree.map(lambda x, t=t: x[t], r.encoder_inputs())
        _, latent = learner.agent.encode(state.params, fresh, inputs)
        np.testing.assert_allclose(np.asarray(latent)[reset[t]], np.asarray(r.latent[t])[reset[t]], atol=1e-5)


def test_jit_over_1024_envs_in_two_vmapped_runs(env):
    """1,024 environments in one jitted scan over whole trials, as 2 runs x 512 environments
    (the nested vmap of runs trained side by side): every trial ends, the runs differ, and
    rulesets are drawn across the benchmark."""
    trial, n = TrialWrapper(env, 2), 512

    def one_run(key):
        obs, state = jax.vmap(trial.reset)(jax.random.split(key, n))

        def step(state, k):
            actions = jax.vmap(trial.action_space.sample)(jax.random.split(k, n))
            _, state, reward, done, _ = jax.vmap(trial.step)(jax.random.split(jax.random.fold_in(k, 1), n), state, actions)
            return state, (reward, done)

        return obs, state.task, jax.lax.scan(step, state, jax.random.split(key, 64))[1]

    obs, tasks, (reward, done) = jax.jit(jax.vmap(one_run))(jax.random.split(jax.random.PRNGKey(0), 2))
    assert obs.shape == (2, n, 629 + 1) and done.any(1).all()
    assert not np.array_equal(reward[0], reward[1])
    assert len(np.unique(np.asarray(tasks).reshape(2 * n, -1), axis=0)) > 300  # of the benchmark's 500 rulesets


@pytest.mark.parametrize("name, words", [
    ("xland:XLand-MiniGrid-R1-8x8", ["'XLand-MiniGrid-R1-8x8'", "XLand-MiniGrid-R1-9x9"]),
    ("xland:XLand-MiniGrid-R1-9x9:episode=3", ["'episode'", "benchmark, episodes, max-steps, view"]),
    ("xland:XLand-MiniGrid-R1-9x9:benchmark=no-such-file", ["'no-such-file'", "trivial-21k", "high-1m"]),
    ("xland:XLand-MiniGrid-R1-9x9:view=4", ["view=4", "odd"]),
])
def test_bad_names_are_one_line_usage_errors(name, words):
    with pytest.raises(UsageError) as excinfo:
        env_spec(name).make()
    message = str(excinfo.value)
    assert "\n" not in message and all(w in message for w in words), message


def test_a_published_benchmark_that_cannot_be_downloaded_says_what_to_do(monkeypatch, tmp_path):
    """No network: the download fails and the message says how to use a local copy."""
    import urllib.request

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlretrieve", offline)
    monkeypatch.setattr("xminigrid.benchmarks.DATA_PATH", str(tmp_path))
    with pytest.raises(UsageError, match="could not download the XLand benchmark 'small-1m'.*benchmark=PATH"):
        make_env("xland:XLand-MiniGrid-R1-9x9:benchmark=small-1m")


def test_missing_extra_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "xminigrid", None)
    with pytest.raises(UsageError) as excinfo:
        env_spec("xland:XLand-MiniGrid-R1-9x9")
    assert str(excinfo.value) == 'the XLand-MiniGrid environments need the optional extra: pip install -e ".[xland]"'
