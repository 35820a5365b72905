"""gymnax environments through the adapter (`--env gymnax:NAME`): equal to gymnax's own API
step by step, tasks per trial, batched and jitted runs, and the one-line errors."""

from __future__ import annotations

import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("gymnax")

from hypermeta.envs.registry import env_spec, make_env  # noqa: E402
from hypermeta.envs.trial import TrialWrapper  # noqa: E402
from hypermeta.errors import UsageError  # noqa: E402

STEPS = 420  # two MetaMaze trials of 200 steps and the start of a third


def run_trials(trial: TrialWrapper, key, actions):
    """Our trial stream for one environment: (first obs, per-step outputs); the step keys are
    split from `key` as below, so a reference can use the same ones."""
    reset_key, run_key = jax.random.split(key)
    obs0, state = trial.reset(reset_key)

    def step(state, inputs):
        k, a = inputs
        obs, new_state, reward, done, info = trial.step(k, state, a)
        return new_state, dict(obs=obs, reward=reward, done=done, next_obs=info["next_obs"], task=info["task"],
                               goal=state.env_state.goal, timeout=info["timeout"])

    _, out = jax.lax.scan(step, state, (jax.random.split(run_key, actions.shape[0]), actions))
    return obs0, out


@pytest.fixture(scope="module")
def maze():
    env = make_env("gymnax:MetaMaze-misc")
    trial = TrialWrapper(env, env.episodes_per_trial)
    actions = jax.random.randint(jax.random.PRNGKey(7), (STEPS,), 0, 4)
    obs0, out = jax.jit(run_trials, static_argnums=0)(trial, jax.random.PRNGKey(3), actions)
    return env, trial, actions, obs0, jax.tree.map(np.asarray, out)


def test_trials_equal_gymnax_step_by_step(maze):
    """Replays the trials with gymnax's public `reset`/`step` (and the task of MetaMaze, its goal,
    drawn by its own reset): observations, rewards, episode ends and the observation after each
    end are the same as ours for the same keys and actions."""
    import gymnax

    env, _, actions, obs0, out = maze
    genv, params = gymnax.make("MetaMaze-misc")
    reset_key, run_key = jax.random.split(jax.random.PRNGKey(3))
    task_key, first_key = jax.random.split(reset_key)

    def start(task_key, key):  # a trial: the goal from gymnax's reset, then a reset with that goal
        goal = genv.reset(task_key, params)[1].goal
        obs, state = genv.reset(key, params)
        return goal, obs, state.replace(goal=goal)

    goal, obs, state = start(task_key, first_key)
    np.testing.assert_allclose(obs0, obs)
    ends = 0
    for t, k in enumerate(jax.random.split(run_key, STEPS)):
        step_key, reset_key, next_trial_key = jax.random.split(k, 3)
        assert np.array_equal(out["task"][t], goal), t
        obs, state, reward, terminated, truncated, info = genv.step(step_key, state, actions[t], params)
        done = bool(terminated | truncated)
        assert (out["reward"][t], out["done"][t], out["timeout"][t]) == (reward, done, bool(truncated & ~terminated))
        np.testing.assert_allclose(out["next_obs"][t], info["final_observation"])
        if done:  # one episode per trial: the next trial, its task drawn from the third key
            ends += 1
            goal, obs, state = start(next_trial_key, reset_key)
        np.testing.assert_allclose(out["obs"][t], obs)
    assert ends >= 2


def test_the_task_is_the_goal_fixed_within_a_trial_and_drawn_anew_for_the_next(maze):
    env, _, _, _, out = maze
    np.testing.assert_array_equal(out["goal"], out["task"])  # the MDP runs on the trial's task
    trial_of_step = np.concatenate([[0], np.cumsum(out["done"])[:-1]])
    goals = [out["task"][trial_of_step == i] for i in range(trial_of_step[-1] + 1)]
    assert all((g == g[0]).all() for g in goals)
    assert len({tuple(g[0]) for g in goals}) == len(goals) >= 3
    assert env.task_dim == 2 and env.episodes_per_trial == 1 and env.max_episode_steps == 200


def test_jit_over_1024_envs_and_the_random_return():
    """1,024 vmapped environments in one jitted scan; uniform random actions earn the reference
    line's return (one trial each, counted until its end)."""
    spec = env_spec("gymnax:MetaMaze-misc")
    trial = TrialWrapper(spec.make(), 1)
    n = 1024

    @jax.jit
    def returns(key):
        _, state = jax.vmap(trial.reset)(jax.random.split(key, n))

        def step(loop, k):
            state, active = loop
            action_key, step_key = jax.random.split(k)
            actions = jax.vmap(trial.action_space.sample)(jax.random.split(action_key, n))
            _, state, reward, done, _ = jax.vmap(trial.step)(jax.random.split(step_key, n), state, actions)
            return (state, active & ~done), reward * active

        return jax.lax.scan(step, (state, jnp.ones(n, bool)), jax.random.split(key, 200))[1].sum(0)

    r = np.asarray(returns(jax.random.PRNGKey(11)))
    assert r.shape == (n,) and len(np.unique(r)) > 5
    assert abs(r.mean() - spec.reference_returns["random"]) < 4 * r.std() / np.sqrt(n)


def test_drawn_parameters_make_the_task_of_an_ordinary_environment():
    """CartPole with its pole length drawn per trial: the task is the length, the dynamics use it,
    and two trials of one stream have different lengths."""
    env = make_env("gymnax:CartPole-v1:episodes=2,length=0.25..0.75")
    assert (env.task_kind, env.task_dim, env.episodes_per_trial) == ("params", 1, 2)
    tasks = jax.vmap(env.sample_task)(jax.random.split(jax.random.PRNGKey(0), 64))
    assert 0.25 <= tasks.min() < 0.3 and 0.7 < tasks.max() <= 0.75
    _, state = env.reset(jax.random.PRNGKey(1), tasks[0])
    pushed = [env.step(jax.random.PRNGKey(2), state, 1, jnp.array([length]))[1].theta_dot for length in (0.25, 0.75)]
    assert pushed[0] != pushed[1]  # a shorter pole tips faster
    fixed = make_env("gymnax:CartPole-v1")
    assert fixed.task_kind == "fixed" and float(fixed.sample_task(jax.random.PRNGKey(0))[0]) == 0.0


@pytest.mark.parametrize("name, words", [
    ("gymnax:MetaMaz-misc", ["'MetaMaz-misc'", "MetaMaze-misc", "CartPole-v1"]),
    ("gymnax:CartPole-v1:length=long", ["length='long'", "LOW..HIGH"]),
    ("gymnax:CartPole-v1:episodes=0", ["episodes='0'", ">= 1"]),
    ("gymnax-MetaMaze", ["'gymnax-MetaMaze'", "gymnax:NAME", "xland:ENV_ID", "grid-world"]),
])
def test_bad_names_are_one_line_usage_errors(name, words):
    with pytest.raises(UsageError) as excinfo:
        env_spec(name).make()
    message = str(excinfo.value)
    assert "\n" not in message and all(w in message for w in words), message


def test_a_parameter_that_does_not_exist_is_named_with_the_allowed_ones():
    with pytest.raises(UsageError, match="no parameter 'lenght'.*length"):
        make_env("gymnax:CartPole-v1:lenght=0.2..0.3")


def test_missing_extra_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "gymnax", None)  # `import gymnax` now raises ImportError
    with pytest.raises(UsageError) as excinfo:
        env_spec("gymnax:MetaMaze-misc")
    assert str(excinfo.value) == 'the gymnax environments need the optional extra: pip install -e ".[gymnax]"'
