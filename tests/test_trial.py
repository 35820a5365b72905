"""Tests of the trial (meta-episode) wrapper on the grid-worlds, incl. reference returns."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hypermeta.envs import GridWorld, TrialState, TrialWrapper, make_env
from hypermeta.envs.grid_world import GridState

NOOP, UP, RIGHT, DOWN, LEFT = range(5)
EP = 15  # steps per episode
K = 4  # episodes per trial
TRIAL = EP * K
# Every open-loop rollout has this shape, so each environment compiles it once.
B, STEPS = 512, 2 * TRIAL
GOALS = [(x, y) for x in range(5) for y in range(5) if not (x <= 1 and y <= 1)]
GOALS_ARR = jnp.array(GOALS, jnp.float32)
KEY = jax.random.key(42)

# Reference returns per trial (4 episodes), computed exactly for this project.
ORACLE_RETURN = 44.29
ORACLE_EPISODE_RETURN = 11.07
DENSE_ORACLE_RETURN = 38.13
RANDOM_RETURN = -4.66


@functools.cache
def trial_env(name: str = "grid-world", k: int = K) -> TrialWrapper:
    return TrialWrapper(make_env(name), k)


# --------------------------------------------------------------------------- helpers


@functools.cache
def _batched_reset(trial: TrialWrapper):
    return jax.jit(jax.vmap(trial.reset))


def start(trial: TrialWrapper, keys, goals=None):
    """Batched trial start; with `goals`, the trial state is built for those tasks."""
    if goals is None:
        return _batched_reset(trial)(keys)
    obs, env_state = jax.vmap(trial.env.reset)(keys, goals)
    n = goals.shape[0]
    state = TrialState(env_state=env_state, task=goals, episode=jnp.zeros((n,), jnp.int32))
    if trial.episodes_per_trial > 1:
        obs = jnp.concatenate([obs, jnp.zeros((n, 1), obs.dtype)], axis=1)
    return obs, state


def _record(obs, state, reward, done, info):
    return dict(
        obs=obs,
        reward=reward,
        done=done,
        info_task=info["task"],
        info_episode=info["episode"],
        info_episode_done=info["episode_done"],
        info_next_obs=info["next_obs"],
        info_timeout=info["timeout"],
        task=state.task,
        episode=state.episode,
        pos=state.env_state.pos,
        t=state.env_state.t,
    )


@functools.cache
def _open_loop_fn(trial: TrialWrapper):
    def run(state, key, actions):
        def body(state, xs):
            k, a = xs
            obs, state, reward, done, info = trial.step(k, state, a)
            return state, _record(obs, state, reward, done, info)

        keys = jax.random.split(key, actions.shape[0])
        return jax.lax.scan(body, state, (keys, actions))[1]

    return jax.jit(jax.vmap(run))


def open_loop(trial, state, keys, actions):
    """Run a (B, STEPS) array of fixed actions; returns a dict of (B, STEPS, ...) arrays."""
    assert np.shape(actions) == (B, STEPS)
    return jax.tree.map(np.asarray, _open_loop_fn(trial)(state, keys, jnp.asarray(actions, jnp.int32)))


def greedy_action(pos, goal):
    """Shortest path: along x first, then along y, then stay."""
    return jnp.where(
        pos[0] < goal[0],
        RIGHT,
        jnp.where(
            pos[0] > goal[0],
            LEFT,
            jnp.where(pos[1] < goal[1], UP, jnp.where(pos[1] > goal[1], DOWN, NOOP)),
        ),
    ).astype(jnp.int32)


def privileged_oracle(obs, state, carry):
    """Knows the goal and the position from the true state."""
    return greedy_action(state.env_state.pos, state.task.astype(jnp.int32)), carry


def show_reader(obs, state, carry):
    """Uses observations only: the first observation of an episode is read as the goal.

    An episode's first observation is the trial's first one or one whose done bit is
    1; the agent is then on (0, 0). Otherwise the observation is read as the position.
    """
    goal, t = carry
    first = (t == 0) | (obs[2] == 1.0)
    goal = jnp.where(first, obs[:2], goal)
    pos = jnp.where(first, 0.0, obs[:2])
    return greedy_action(pos, goal), (goal, t + 1)


@functools.cache
def _closed_loop_fn(trial: TrialWrapper, policy, num_steps: int):
    def run(obs, state, key):
        def body(c, k):
            obs, state, pc = c
            action, pc = policy(obs, state, pc)
            obs, state, reward, done, info = trial.step(k, state, action)
            return (obs, state, pc), _record(obs, state, reward, done, info)

        carry0 = (jnp.zeros(2, jnp.float32), jnp.zeros((), jnp.int32))
        return jax.lax.scan(body, (obs, state, carry0), jax.random.split(key, num_steps))[1]

    return jax.jit(jax.vmap(run))


def closed_loop(trial, policy, obs, state, keys, num_steps=TRIAL):
    return jax.tree.map(np.asarray, _closed_loop_fn(trial, policy, num_steps)(obs, state, keys))


@functools.cache
def _batched_step(trial: TrialWrapper):
    return jax.jit(jax.vmap(trial.step))


def random_actions(seed, p=None):
    choices = jnp.array([NOOP, UP, RIGHT, DOWN, LEFT])
    return jax.random.choice(jax.random.key(seed), choices, (B, STEPS), p=p)


def all_goals_start(trial):
    keys = jax.random.split(KEY, len(GOALS))
    obs, state = start(trial, keys, GOALS_ARR)
    return obs, state, keys


# --------------------------------------------------------------------------- construction


@pytest.mark.parametrize("k, dim", [(1, 2), (2, 3), (4, 3)])
def test_done_bit_only_when_more_than_one_episode(k, dim):
    trial = trial_env("grid-world", k)
    assert trial.has_done_bit == (k > 1)
    assert trial.observation_space.shape == (dim,)
    assert trial.max_trial_steps == k * EP
    obs, _ = trial.reset(KEY)
    assert obs.shape == (dim,)
    obs, *_ = trial.step(KEY, trial.reset(KEY)[1], jnp.int32(UP))
    assert obs.shape == (dim,)


@pytest.mark.parametrize("k", [0, -1])
def test_fewer_than_one_episode_per_trial_raises(k):
    with pytest.raises(ValueError):
        TrialWrapper(GridWorld(), k)


def test_reset_starts_first_episode_with_a_sampled_goal():
    trial = trial_env()
    obs, state = start(trial, jax.random.split(KEY, 256))
    np.testing.assert_array_equal(obs, np.zeros((256, 3)))  # position (0, 0), done bit 0
    np.testing.assert_array_equal(state.episode, 0)
    np.testing.assert_array_equal(state.env_state.t, 0)
    tasks = set(map(tuple, np.asarray(state.task).astype(int).tolist()))
    assert tasks <= set(GOALS)
    assert len(tasks) >= 15  # different keys give different tasks


# --------------------------------------------------------------------------- boundaries


def test_episode_and_trial_boundaries():
    trial = trial_env()
    n, steps = B, STEPS
    keys = jax.random.split(KEY, n)
    _, state = start(trial, keys)
    tr = open_loop(trial, state, keys, random_actions(1))
    s = np.arange(1, steps + 1)  # number of steps taken when the observation is returned

    # trial done exactly at the end of the 4th episode, i.e. every 60 steps
    np.testing.assert_array_equal(tr["done"], np.broadcast_to(s % TRIAL == 0, (n, steps)))
    # episode_done every 15 steps; the episode index of the step cycles 0..3
    np.testing.assert_array_equal(tr["info_episode_done"], np.broadcast_to(s % EP == 0, (n, steps)))
    np.testing.assert_array_equal(tr["info_episode"], np.broadcast_to(((s - 1) // EP) % K, (n, steps)))
    np.testing.assert_array_equal(tr["episode"], np.broadcast_to((s // EP) % K, (n, steps)))
    # done bit: 1 exactly after an intra-trial episode end, 0 on a new trial's first obs
    bit = (s % EP == 0) & (s % TRIAL != 0)
    np.testing.assert_array_equal(tr["obs"][..., 2], np.broadcast_to(bit, (n, steps)).astype(np.float32))
    assert set(np.unique(tr["obs"][..., 2]).tolist()) == {0.0, 1.0}
    # every episode's first observation is the start position and the MDP is reset
    firsts = s % EP == 0
    np.testing.assert_array_equal(tr["obs"][:, firsts, :2], 0.0)
    np.testing.assert_array_equal(tr["pos"][:, firsts], 0)
    np.testing.assert_array_equal(tr["t"], np.broadcast_to(s % EP, (n, steps)))
    # other observations are the true positions
    np.testing.assert_array_equal(tr["obs"][..., :2], tr["pos"].astype(np.float32))
    # next_obs (what VariBAD decoders reconstruct) is the MDP's observation after the step,
    # with the reference's done bit of the episode end (also at the trial's end)
    assert tr["info_next_obs"].shape == (n, steps, 3)
    np.testing.assert_array_equal(tr["info_next_obs"][..., 2], np.broadcast_to(s % EP == 0, (n, steps)))
    np.testing.assert_array_equal(tr["info_next_obs"][..., :2][:, ~firsts], tr["obs"][:, ~firsts, :2])
    # Grid-World episodes end only at their time limit; only the trial's end is reported
    # as a timeout (for "proper time limits"), never an episode end inside the trial.
    np.testing.assert_array_equal(tr["info_timeout"], tr["done"])


def test_episode_end_returns_the_next_episodes_first_observation():
    trial = trial_env()
    keys = jax.random.split(KEY, B)
    _, state = start(trial, keys, jnp.tile(jnp.array([[4.0, 4.0]]), (B, 1)))
    # Always right: after 15 steps the agent would be at (4, 0) without the reset.
    tr = open_loop(trial, state, keys, np.full((B, STEPS), RIGHT))
    obs = tr["obs"][0]
    np.testing.assert_array_equal(obs[13], [4.0, 0.0, 0.0])
    np.testing.assert_array_equal(obs[14], [0.0, 0.0, 1.0])  # new episode, done bit set
    np.testing.assert_array_equal(obs[15], [1.0, 0.0, 0.0])  # walking again from the start
    np.testing.assert_array_equal(obs[16], [2.0, 0.0, 0.0])


def test_task_fixed_within_a_trial_and_resampled_between_trials():
    trial = trial_env()
    n, trials, steps = B, STEPS // TRIAL, STEPS
    keys = jax.random.split(jax.random.key(7), n)
    _, state = start(trial, keys)
    tr = open_loop(trial, state, keys, random_actions(8))

    info_task = tr["info_task"].reshape(n, trials, TRIAL, 2)
    # the task of every step of a trial is the same
    np.testing.assert_array_equal(info_task, np.broadcast_to(info_task[:, :, :1], info_task.shape))
    # first trial uses the task drawn at reset
    np.testing.assert_array_equal(info_task[:, 0, 0], state.task)
    # the trial's last step reports the old task; the state then holds the next trial's task
    ends = np.arange(1, trials + 1) * TRIAL - 1
    np.testing.assert_array_equal(tr["info_task"][:, ends], info_task[:, :, -1])
    np.testing.assert_array_equal(tr["task"][:, ends[:-1]], info_task[:, 1:, 0])
    # within a trial the state's task never changes
    within = np.ones(steps, bool)
    within[ends] = False
    np.testing.assert_array_equal(tr["task"][:, within], tr["info_task"][:, within])
    # new tasks are valid goals, and they do change between trials (prob 20/21 each)
    assert set(map(tuple, tr["task"].reshape(-1, 2).astype(int).tolist())) <= set(GOALS)
    changed = np.any(info_task[:, 1:, 0] != info_task[:, :-1, 0], axis=-1)
    assert 0.85 < changed.mean() <= 1.0


def test_observations_do_not_depend_on_the_task():
    """Policy-independent check: same actions under 21 goals -> same obs, different rewards."""
    trial = trial_env()
    goals = GOALS_ARR[np.arange(B) % len(GOALS)]  # every goal, repeated
    keys = jnp.broadcast_to(jax.random.key(3), (B,))  # same reset and step keys for every goal
    _, state = start(trial, keys, goals)
    actions = jax.random.randint(jax.random.key(4), (STEPS,), 0, 5)
    tr = open_loop(trial, state, keys, np.broadcast_to(actions, (B, STEPS)))
    first = slice(0, TRIAL)  # the first trial, where the goals differ
    obs = tr["obs"][:, first]
    np.testing.assert_array_equal(obs, np.broadcast_to(obs[:1], obs.shape))
    returns = tr["reward"][:, first].sum(axis=1)
    assert len(np.unique(np.round(returns[: len(GOALS)], 4))) > 1


def test_single_episode_trials():
    trial = trial_env("grid-world", 1)
    n, steps = B, STEPS
    keys = jax.random.split(jax.random.key(5), n)
    obs0, state = start(trial, keys)
    assert obs0.shape == (n, 2)
    tr = open_loop(trial, state, keys, random_actions(6))
    s = np.arange(1, steps + 1)
    assert tr["obs"].shape == (n, steps, 2)  # no done bit
    np.testing.assert_array_equal(tr["done"], np.broadcast_to(s % EP == 0, (n, steps)))
    np.testing.assert_array_equal(tr["info_episode"], 0)
    np.testing.assert_array_equal(tr["episode"], 0)
    np.testing.assert_array_equal(tr["obs"][:, s % EP == 0], 0.0)
    # every episode is a trial: the task is resampled after each
    info_task = tr["info_task"].reshape(n, steps // EP, EP, 2)
    np.testing.assert_array_equal(info_task, np.broadcast_to(info_task[:, :, :1], info_task.shape))
    changed = np.any(info_task[:, 1:, 0] != info_task[:, :-1, 0], axis=-1)
    assert 0.85 < changed.mean() <= 1.0


# --------------------------------------------------------------------------- reference returns


@pytest.mark.parametrize(
    "name, expected", [("grid-world", ORACLE_RETURN), ("grid-world-dense", DENSE_ORACLE_RETURN)]
)
def test_oracle_return_over_all_21_goals(name, expected):
    trial = trial_env(name)
    obs, state, keys = all_goals_start(trial)
    tr = closed_loop(trial, privileged_oracle, obs, state, keys)
    # exactly one trial, ending on its last step
    assert tr["done"][:, -1].all() and not tr["done"][:, :-1].any()
    np.testing.assert_array_equal(tr["info_task"], np.broadcast_to(np.asarray(GOALS_ARR)[:, None], (21, TRIAL, 2)))
    returns = tr["reward"].sum(axis=1)
    assert returns.mean() == pytest.approx(expected, abs=0.01)
    # all four episodes are alike (every episode restarts from (0, 0))
    episode_returns = tr["reward"].reshape(21, K, EP).sum(axis=2)
    np.testing.assert_allclose(episode_returns, episode_returns[:, :1].repeat(K, axis=1), atol=1e-5)
    if name == "grid-world":
        assert episode_returns.mean() == pytest.approx(ORACLE_EPISODE_RETURN, abs=0.01)
        # the oracle sits on the goal from the step it arrives until the episode ends
        dist = np.asarray(GOALS).sum(axis=1)
        on_goal = (tr["reward"] == 1.0).reshape(21, K, EP).sum(axis=2)
        np.testing.assert_array_equal(on_goal, (EP - dist + 1)[:, None].repeat(K, axis=1))


def test_show_reader_gets_the_oracle_return_from_observations_alone():
    trial = trial_env("grid-world-show")
    obs, state, keys = all_goals_start(trial)
    np.testing.assert_array_equal(obs[:, :2], GOALS_ARR)  # the first observation is the goal
    tr = closed_loop(trial, show_reader, obs, state, keys)
    assert tr["reward"].sum(axis=1).mean() == pytest.approx(ORACLE_RETURN, abs=0.01)


def test_random_policy_return():
    trial = trial_env()
    returns = []
    for seed in range(16):  # 16 batches x 512 envs x 2 trials = 16384 trials
        keys = jax.random.split(jax.random.key(1000 + seed), B)
        _, state = start(trial, keys)
        tr = open_loop(trial, state, keys, random_actions(2000 + seed))
        ends = np.flatnonzero(tr["done"][0])
        np.testing.assert_array_equal(ends, [TRIAL - 1, 2 * TRIAL - 1])
        returns.append(tr["reward"].reshape(B * STEPS // TRIAL, TRIAL).sum(axis=1))
    returns = np.concatenate(returns)
    n = returns.size
    assert n == 16384
    stderr = returns.std(ddof=1) / np.sqrt(n)
    assert 0.0 < stderr < 0.1
    # 4 standard errors plus the rounding of the reference value
    assert abs(returns.mean() - RANDOM_RETURN) < 4 * stderr + 0.005, (returns.mean(), stderr)


# --------------------------------------------------------------------------- show variants in trials


def test_show_goal_on_the_first_observation_of_every_episode():
    trial = trial_env("grid-world-show")
    n, steps = B, STEPS
    keys = jax.random.split(jax.random.key(13), n)
    obs0, state = start(trial, keys)
    np.testing.assert_array_equal(obs0[:, :2], state.task)  # trial reset
    np.testing.assert_array_equal(obs0[:, 2], 0.0)
    tr = open_loop(trial, state, keys, random_actions(14))
    s = np.arange(1, steps + 1)
    firsts = s % EP == 0
    # intra-trial resets show the trial's goal; after a trial end, the *new* goal
    np.testing.assert_array_equal(tr["obs"][:, firsts, :2], tr["task"][:, firsts])
    assert np.any(tr["task"][:, TRIAL - 1] != tr["info_task"][:, TRIAL - 1])
    # all other observations are the position, also when back on (0, 0)
    np.testing.assert_array_equal(tr["obs"][:, ~firsts, :2], tr["pos"][:, ~firsts].astype(np.float32))
    assert np.any(np.all(tr["pos"][:, ~firsts] == 0, axis=-1))
    # done bit as for the plain grid-world
    bit = firsts & (s % TRIAL != 0)
    np.testing.assert_array_equal(tr["obs"][..., 2], np.broadcast_to(bit, (n, steps)).astype(np.float32))


def test_show_start_cell_in_trials():
    trial = trial_env("grid-world-show-start-cell")
    n, steps = B, STEPS
    keys = jax.random.split(jax.random.key(15), n)
    obs0, state = start(trial, keys)
    np.testing.assert_array_equal(obs0, 0.0)  # reset observation is the plain start
    # Biased towards noop/down/left so that steps ending on (0, 0) are common.
    tr = open_loop(trial, state, keys, random_actions(16, p=jnp.array([0.3, 0.15, 0.15, 0.2, 0.2])))
    s = np.arange(1, steps + 1)
    firsts = np.broadcast_to(s % EP == 0, (n, steps))
    on_start = np.all(tr["pos"] == 0, axis=-1)
    shows = on_start & ~firsts  # a step that left the agent on (0, 0)
    assert shows.sum() > 100 and (~on_start).sum() > 100
    np.testing.assert_array_equal(tr["obs"][shows][:, :2], tr["task"][shows])
    np.testing.assert_array_equal(tr["obs"][~shows][:, :2], tr["pos"][~shows].astype(np.float32))
    np.testing.assert_array_equal(tr["obs"][firsts][:, :2], 0.0)


# --------------------------------------------------------------------------- jax transforms, keys


def test_reset_and_step_jit_and_vmap_shapes():
    trial = trial_env()
    n = 64
    keys = jax.random.split(KEY, n)
    obs, state = _batched_reset(trial)(keys)
    assert obs.shape == (n, 3)
    assert state.task.shape == (n, 2) and state.episode.shape == (n,)
    assert state.env_state.pos.shape == (n, 2)
    obs, state2, reward, done, info = _batched_step(trial)(keys, state, jnp.full((n,), UP, jnp.int32))
    assert obs.shape == (n, 3) and reward.shape == (n,) and done.shape == (n,)
    assert done.dtype == jnp.bool_ and reward.dtype == jnp.float32
    assert info["task"].shape == (n, 2) and info["episode"].shape == (n,)
    assert info["episode_done"].shape == (n,)
    np.testing.assert_array_equal(obs, np.tile([0.0, 1.0, 0.0], (n, 1)))
    np.testing.assert_array_equal(state2.task, state.task)


def test_same_key_same_result_different_keys_different_tasks():
    trial = trial_env()
    reset, step = _batched_reset(trial), _batched_step(trial)
    n = 64
    keys = jax.random.split(jax.random.key(100), n)
    keys = keys.at[1].set(keys[0])  # rows 0 and 1 share their key
    obs, state = reset(keys)
    tasks = np.asarray(state.task)
    np.testing.assert_array_equal(tasks[0], tasks[1])
    np.testing.assert_array_equal(obs[0], obs[1])
    assert len(np.unique(tasks, axis=0)) >= 10

    # A trial's last step, from one state under 64 step keys (rows 0 and 1 share theirs).
    one = jax.tree.map(lambda x: x[0], state)
    s_end = one.replace(
        episode=jnp.int32(K - 1), env_state=GridState(pos=jnp.zeros(2, jnp.int32), t=jnp.int32(EP - 1))
    )
    s_end = jax.tree.map(lambda x: jnp.broadcast_to(x, (n,) + x.shape), s_end)
    out = step(keys, s_end, jnp.full((n,), NOOP, jnp.int32))
    for leaf in jax.tree.leaves(out):
        np.testing.assert_array_equal(leaf[0], leaf[1])
    _, new_state, _, done, info = out
    assert np.asarray(done).all()
    np.testing.assert_array_equal(info["task"], np.broadcast_to(tasks[0], (n, 2)))
    # the next trial's task depends on the step key
    assert len(np.unique(np.asarray(new_state.task), axis=0)) >= 10
    # rerunning with the same keys reproduces everything
    again = step(keys, s_end, jnp.full((n,), NOOP, jnp.int32))
    for a, b in zip(jax.tree.leaves(out), jax.tree.leaves(again), strict=True):
        np.testing.assert_array_equal(a, b)


def test_the_trial_rule_is_the_same_for_jax_and_host_trials():
    """`trial_rule` is the bookkeeping of TrialWrapper (jnp) and of the host's TrialEnv (numpy):
    every case of a 3-episode trial gives the same next episode, trial end, done bit and timeout."""
    import itertools

    from hypermeta.envs.trial import trial_rule

    for episode, done, timed_out in itertools.product(range(3), (False, True), (False, True)):
        args = (np.int32(episode), np.bool_(done), np.bool_(timed_out))
        host = [v.item() for v in trial_rule(*args, 3, xp=np)]
        jax_ = [v.item() for v in trial_rule(*(jnp.asarray(a) for a in args), 3)]
        last = episode == 2 and done
        assert host == jax_ == [0 if last else episode + done, last, done and not last, last and timed_out]
