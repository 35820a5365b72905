"""Tests of the three grid-worlds (single episodes, no trial wrapper) and the registry."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hypermeta.envs import Box, Discrete, Environment, GridWorld, make_env
from hypermeta.envs.grid_world import GridState, goal_cells
from hypermeta.envs.registry import ENVIRONMENTS
from hypermeta.errors import UsageError

SIZE = 5
NOOP, UP, RIGHT, DOWN, LEFT = range(5)
# Written out independently of the env: action -> (dx, dy).
DELTAS = {NOOP: (0, 0), UP: (0, 1), RIGHT: (1, 0), DOWN: (0, -1), LEFT: (-1, 0)}
ALL_CELLS = [(x, y) for x in range(SIZE) for y in range(SIZE)]
EXPECTED_GOALS = sorted(c for c in ALL_CELLS if c not in {(0, 0), (0, 1), (1, 0), (1, 1)})
KEY = jax.random.key(0)


def _state(x: int, y: int, t: int = 0) -> GridState:
    return GridState(pos=jnp.array([x, y], jnp.int32), t=jnp.array(t, jnp.int32))


def _goal(x: int, y: int) -> jax.Array:
    return jnp.array([x, y], jnp.float32)


# --------------------------------------------------------------------------- constants


GRID_WORLDS = sorted(name for name in ENVIRONMENTS if name.startswith("grid-world"))


def test_registry_builds_each_variant():
    assert set(GRID_WORLDS) == {
        "grid-world",
        "grid-world-show",
        "grid-world-show-start-cell",
        "grid-world-dense",
    }
    expected = {
        "grid-world": ("none", False),
        "grid-world-show": ("episode-start", False),
        "grid-world-show-start-cell": ("start-cell", False),
        "grid-world-dense": ("none", True),
    }
    for name, (show, dense) in expected.items():
        env = make_env(name)
        assert isinstance(env, GridWorld) and isinstance(env, Environment)
        assert (env.show, env.dense) == (show, dense), name


@pytest.mark.parametrize("name", GRID_WORLDS)
def test_paper_constants_and_spaces(name):
    env = make_env(name)
    assert env.size == 5
    assert env.max_episode_steps == 15
    assert env.episodes_per_trial == 4
    assert env.task_dim == 2
    assert isinstance(env.action_space, Discrete) and env.action_space.n == 5
    assert isinstance(env.observation_space, Box)
    assert env.observation_space.shape == (2,)
    assert (env.observation_space.low, env.observation_space.high) == (0.0, 4.0)


def test_invalid_constructor_arguments_raise():
    with pytest.raises(ValueError, match="show"):
        GridWorld(show="always")
    with pytest.raises(ValueError, match="size"):
        GridWorld(size=2)


# --------------------------------------------------------------------------- tasks


def test_goal_cells_are_the_21_cells_away_from_the_start():
    cells = sorted(map(tuple, np.asarray(goal_cells(SIZE)).tolist()))
    assert len(cells) == 21
    assert cells == EXPECTED_GOALS


def test_sample_task_is_uniform_over_the_21_goal_cells():
    env = GridWorld()
    n = 21 * 1000
    tasks = np.asarray(jax.jit(jax.vmap(env.sample_task))(jax.random.split(KEY, n)))
    assert tasks.shape == (n, 2)
    assert tasks.dtype == np.float32
    assert np.all(tasks == np.round(tasks))  # integer cells
    cells, counts = np.unique(tasks.astype(int), axis=0, return_counts=True)
    assert sorted(map(tuple, cells.tolist())) == EXPECTED_GOALS  # only these, and all of them
    expected = n / 21
    chi2 = float(np.sum((counts - expected) ** 2 / expected))
    # 20 degrees of freedom: mean 20, sd ~6.3; 60 is a p < 1e-5 threshold.
    assert chi2 < 60.0, (chi2, counts)
    assert counts.min() > 0.85 * expected and counts.max() < 1.15 * expected


# --------------------------------------------------------------------------- dynamics


def test_reset_starts_at_origin():
    env = GridWorld()
    obs, state = env.reset(KEY, _goal(3, 4))
    np.testing.assert_array_equal(obs, [0.0, 0.0])
    assert obs.dtype == jnp.float32
    np.testing.assert_array_equal(state.pos, [0, 0])
    assert int(state.t) == 0


@pytest.mark.parametrize(
    "start, action, end",
    [
        ((2, 2), NOOP, (2, 2)),
        ((2, 2), UP, (2, 3)),
        ((2, 2), RIGHT, (3, 2)),
        ((2, 2), DOWN, (2, 1)),
        ((2, 2), LEFT, (1, 2)),
        ((0, 0), DOWN, (0, 0)),
        ((0, 0), LEFT, (0, 0)),
        ((4, 4), UP, (4, 4)),
        ((4, 4), RIGHT, (4, 4)),
        ((0, 4), UP, (0, 4)),
        ((4, 0), RIGHT, (4, 0)),
    ],
)
def test_named_moves(start, action, end):
    env = GridWorld()
    obs, state, *_ = env.step(KEY, _state(*start), jnp.int32(action), _goal(4, 4))
    np.testing.assert_array_equal(state.pos, end)
    np.testing.assert_array_equal(obs, np.array(end, np.float32))


def test_all_moves_from_all_cells_clip_at_walls():
    env = GridWorld()
    pairs = list(itertools.product(ALL_CELLS, range(5)))
    pos = jnp.array([p for p, _ in pairs], jnp.int32)
    actions = jnp.array([a for _, a in pairs], jnp.int32)
    states = GridState(pos=pos, t=jnp.zeros(len(pairs), jnp.int32))
    step = jax.jit(jax.vmap(env.step, in_axes=(None, 0, 0, None)))
    obs, new, _, _, _ = step(KEY, states, actions, _goal(4, 4))
    expected = np.array(
        [
            [min(max(x + DELTAS[a][0], 0), SIZE - 1), min(max(y + DELTAS[a][1], 0), SIZE - 1)]
            for (x, y), a in pairs
        ]
    )
    np.testing.assert_array_equal(new.pos, expected)
    np.testing.assert_array_equal(obs, expected.astype(np.float32))
    np.testing.assert_array_equal(new.t, 1)


def test_episode_is_done_exactly_at_the_15th_step():
    env = GridWorld()
    goal = _goal(2, 2)

    def body(state, action):
        _, state, _, done, _ = env.step(KEY, state, action, goal)
        return state, (done, state.t)

    _, state = env.reset(KEY, goal)
    # Walk onto the goal and stay there: the goal must not end the episode.
    actions = jnp.array([RIGHT, RIGHT, UP, UP] + [NOOP] * 11, jnp.int32)
    _, (dones, ts) = jax.lax.scan(body, state, actions)
    dones = np.asarray(dones)
    assert dones.dtype == bool
    np.testing.assert_array_equal(np.flatnonzero(dones), [14])
    np.testing.assert_array_equal(ts, np.arange(1, 16))


# --------------------------------------------------------------------------- rewards


def _rewards_for_all_positions_and_goals(env: GridWorld):
    """Reward of a noop on each of the 25 cells, for each of the 21 goals: (21, 25)."""
    goals = jnp.array(EXPECTED_GOALS, jnp.float32)
    states = GridState(pos=jnp.array(ALL_CELLS, jnp.int32), t=jnp.zeros(25, jnp.int32))

    def one(goal, state):
        _, _, reward, done, _ = env.step(KEY, state, jnp.int32(NOOP), goal)
        return reward, done

    f = jax.jit(jax.vmap(jax.vmap(one, in_axes=(None, 0)), in_axes=(0, None)))
    rewards, dones = f(goals, states)
    return np.asarray(rewards), np.asarray(dones)


def test_sparse_reward_plus_one_on_goal_minus_point_one_elsewhere():
    rewards, dones = _rewards_for_all_positions_and_goals(GridWorld())
    for i, goal in enumerate(EXPECTED_GOALS):
        for j, cell in enumerate(ALL_CELLS):
            expected = 1.0 if cell == goal else -0.1
            assert rewards[i, j] == pytest.approx(expected), (goal, cell)
    assert not dones.any()  # reaching the goal is not terminal


def test_dense_reward_is_minus_manhattan_distance_over_five():
    rewards, dones = _rewards_for_all_positions_and_goals(make_env("grid-world-dense"))
    for i, (gx, gy) in enumerate(EXPECTED_GOALS):
        for j, (x, y) in enumerate(ALL_CELLS):
            expected = 1.0 if (x, y) == (gx, gy) else -(abs(x - gx) + abs(y - gy)) / 5
            assert rewards[i, j] == pytest.approx(expected, abs=1e-6), ((gx, gy), (x, y))
    assert not dones.any()


def test_reward_uses_position_after_the_step():
    env = GridWorld()
    _, _, r_in, _, _ = env.step(KEY, _state(1, 2), jnp.int32(RIGHT), _goal(2, 2))
    _, _, r_out, _, _ = env.step(KEY, _state(2, 2), jnp.int32(LEFT), _goal(2, 2))
    assert float(r_in) == pytest.approx(1.0)
    assert float(r_out) == pytest.approx(-0.1)


# --------------------------------------------------------------------------- observations


def _run(env: GridWorld, goal, actions):
    """Reset + a scripted action sequence; returns (obs list incl. reset obs, rewards)."""

    def body(state, action):
        obs, state, reward, _, _ = env.step(KEY, state, action, goal)
        return state, (obs, reward)

    obs0, state = env.reset(KEY, goal)
    _, (obs, rewards) = jax.lax.scan(body, state, jnp.asarray(actions, jnp.int32))
    return np.concatenate([np.asarray(obs0)[None], np.asarray(obs)]), np.asarray(rewards)


ACTIONS = [RIGHT, UP, UP, RIGHT, RIGHT, NOOP, LEFT, DOWN, DOWN, LEFT, LEFT, UP, RIGHT, UP, NOOP]


def _positions(actions):
    """Positions after each action from (0, 0), computed independently of the env."""
    x = y = 0
    out = [(0, 0)]
    for a in actions:
        dx, dy = DELTAS[a]
        x, y = min(max(x + dx, 0), SIZE - 1), min(max(y + dy, 0), SIZE - 1)
        out.append((x, y))
    return np.array(out, np.float32)


def test_observation_is_position_and_does_not_reveal_the_goal():
    env = GridWorld()
    obs_a, rew_a = _run(env, _goal(3, 2), ACTIONS)
    obs_b, rew_b = _run(env, _goal(0, 4), ACTIONS)
    np.testing.assert_array_equal(obs_a, _positions(ACTIONS))
    np.testing.assert_array_equal(obs_a, obs_b)
    assert not np.allclose(rew_a, rew_b)  # the goals do matter for the rewards


def test_show_episode_start_first_observation_is_the_goal():
    env = make_env("grid-world-show")
    goal = (3, 4)
    # Includes a return to (0, 0) mid-episode: that shows the position, not the goal.
    actions = [UP, DOWN, NOOP, LEFT, RIGHT, RIGHT, UP]
    obs, _ = _run(env, _goal(*goal), actions)
    np.testing.assert_array_equal(obs[0], goal)
    np.testing.assert_array_equal(obs[1:], _positions(actions)[1:])
    # Another goal: only the first observation changes.
    obs2, _ = _run(env, _goal(4, 0), actions)
    np.testing.assert_array_equal(obs2[0], (4, 0))
    np.testing.assert_array_equal(obs2[1:], obs[1:])


def test_show_start_cell_reveals_goal_only_when_step_ends_on_start():
    env = make_env("grid-world-show-start-cell")
    goal = (2, 3)
    # noop at start, bump left, bump down, move away, come back, move away.
    actions = [NOOP, LEFT, DOWN, UP, RIGHT, DOWN, LEFT, RIGHT]
    obs, _ = _run(env, _goal(*goal), actions)
    positions = _positions(actions)
    np.testing.assert_array_equal(obs[0], (0, 0))  # reset shows the plain start position
    for i in range(1, len(obs)):
        if tuple(positions[i]) == (0, 0):
            np.testing.assert_array_equal(obs[i], goal, err_msg=f"obs {i}")
        else:
            np.testing.assert_array_equal(obs[i], positions[i], err_msg=f"obs {i}")
    # the sequence does contain both kinds of step
    assert sum(tuple(p) == (0, 0) for p in positions[1:]) == 4


def test_plain_and_dense_never_show_the_goal_on_the_start_cell():
    for name in ("grid-world", "grid-world-dense"):
        env = make_env(name)
        obs, _ = _run(env, _goal(4, 4), [NOOP, LEFT, DOWN])
        np.testing.assert_array_equal(obs, np.zeros((4, 2)), err_msg=name)


# --------------------------------------------------------------------------- jax transforms


def test_reset_and_step_jit_and_vmap():
    env = GridWorld()
    n = 8
    keys = jax.random.split(KEY, n)
    tasks = jax.jit(jax.vmap(env.sample_task))(keys)
    obs, states = jax.jit(jax.vmap(env.reset))(keys, tasks)
    assert obs.shape == (n, 2) and states.pos.shape == (n, 2) and states.t.shape == (n,)
    actions = jnp.full((n,), RIGHT, jnp.int32)
    obs, states, rewards, dones, _ = jax.jit(jax.vmap(env.step))(keys, states, actions, tasks)
    assert obs.shape == (n, 2) and rewards.shape == (n,) and dones.shape == (n,)
    np.testing.assert_array_equal(obs, np.tile([1.0, 0.0], (n, 1)))
    # no goal is at (1, 0), so every reward is the off-goal one
    np.testing.assert_allclose(rewards, -0.1)


# --------------------------------------------------------------------------- registry errors


def test_make_env_unknown_name_lists_the_allowed_names():
    with pytest.raises(UsageError) as excinfo:
        make_env("grid-wrld")
    message = str(excinfo.value)
    assert "grid-wrld" in message
    for name in ENVIRONMENTS:
        assert name in message
    assert isinstance(excinfo.value, ValueError)
