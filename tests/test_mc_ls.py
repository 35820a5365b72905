"""Tests of MC-LS: movement rules, rewards, the optimal and signal-ignoring returns, timeout,
trial semantics, rendering, batching, and the image encoder."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hypermeta.envs import TrialWrapper, make_env
from hypermeta.envs.mc_ls import CELLS, END, MCLS, ROOMS, SIGNAL, MazeState
from hypermeta.envs.registry import env_spec
from hypermeta.errors import UsageError
from hypermeta.families import family_defaults
from hypermeta.training.learner import Learner
from hypermeta.validate import validate

LEFT, FORWARD, RIGHT = 0, 1, 2
GREEN, RED = jnp.array([1.0]), jnp.array([-1.0])
ENV = MCLS()

# The movement rules of the issue, written out cell by cell: (x, y) -> {action: next (x, y)};
# a missing action is blocked. "exit" leaves the room forward.
RULES = {
    (0, 0): {FORWARD: (0, 1)},
    (0, 1): {LEFT: (-1, 1), RIGHT: (1, 1)},
    (-1, 1): {FORWARD: (-1, 2)},
    (1, 1): {FORWARD: (1, 2)},
    (-1, 2): {FORWARD: (-1, 3)},
    (1, 2): {FORWARD: (1, 3)},
    (-1, 3): {RIGHT: (0, 3)},
    (1, 3): {LEFT: (0, 3)},
    (0, 3): {FORWARD: "exit"},
}


@functools.cache
def jitted(env: MCLS):
    return jax.jit(env.reset), jax.jit(env.step)


def state_at(cell_xy, room=3, room_type=1, phase=ROOMS, t=10, rooms=16) -> MazeState:
    types = jnp.full((rooms,), 1 - room_type, jnp.int32).at[room].set(room_type)
    return MazeState(phase=jnp.int32(phase), room=jnp.int32(room), cell=jnp.int32(CELLS.index(cell_xy)),
                     room_types=types, t=jnp.int32(t))


def step(state, action, task=GREEN, env=ENV, seed=0):
    _, step_fn = jitted(env)
    obs, state, reward, done, info = step_fn(jax.random.PRNGKey(seed), state, jnp.int32(action), task)
    return obs, state, float(reward), bool(done)


def oracle_action(state: MazeState, task, follow_signal: bool = True) -> int:
    """The optimal action; with follow_signal=False the final turn is always RIGHT."""
    phase, (x, y) = int(state.phase), CELLS[int(state.cell)]
    if phase == SIGNAL:
        return RIGHT
    if phase == END:
        return RIGHT if (not follow_signal or float(task[0]) > 0) else LEFT
    if (x, y) == (0, 1):
        return RIGHT if int(state.room_types[int(state.room)]) == 1 else LEFT
    return {(-1, 3): RIGHT, (1, 3): LEFT}.get((x, y), FORWARD)


def run_episode(task, follow_signal=True, seed=0, env=ENV):
    reset_fn, _ = jitted(env)
    _, state = reset_fn(jax.random.PRNGKey(seed), task)
    total, steps, done = 0.0, 0, False
    while not done:
        _, state, reward, done = step(state, oracle_action(state, task, follow_signal), task, env)
        total, steps = total + reward, steps + 1
    return total, steps


# --------------------------------------------------------------------------- rules and rewards


@pytest.mark.parametrize("cell_xy", list(RULES))
def test_movement_rules_at_every_cell(cell_xy):
    for action in (LEFT, FORWARD, RIGHT):
        _, new, reward, done = step(state_at(cell_xy), action)
        expected = RULES[cell_xy].get(action)
        assert not done
        if expected is None:  # blocked: nothing changes, no reward
            assert int(new.cell) == CELLS.index(cell_xy) and int(new.room) == 3 and reward == 0.0
        elif expected == "exit":
            assert (int(new.room), CELLS[int(new.cell)], int(new.phase)) == (4, (0, 0), ROOMS)
        else:
            assert CELLS[int(new.cell)] == expected and int(new.room) == 3
        assert int(new.t) == 11


def test_progress_moves_pay_except_from_the_check_cell():
    for cell_xy, moves in RULES.items():
        for action in moves:
            _, _, reward, _ = step(state_at(cell_xy, room_type=1), action)
            if cell_xy == (0, 1):
                assert reward == pytest.approx(0.1 if action == RIGHT else 0.0)  # type 1: right is correct
            else:
                assert reward == pytest.approx(0.1)


@pytest.mark.parametrize("room_type,correct,wrong", [(1, RIGHT, LEFT), (0, LEFT, RIGHT)])
def test_room_check_rewards_the_side_of_the_room_type(room_type, correct, wrong):
    assert step(state_at((0, 1), room_type=room_type), correct)[2] == pytest.approx(0.1)
    assert step(state_at((0, 1), room_type=room_type), wrong)[2] == 0.0


def test_signal_tile_only_right_leaves():
    signal = state_at((0, 0), room=0, phase=SIGNAL)
    for action in (LEFT, FORWARD):
        _, new, reward, done = step(signal, action)
        assert (int(new.phase), reward, done) == (SIGNAL, 0.0, False)
    _, new, reward, _ = step(signal, RIGHT)
    assert (int(new.phase), int(new.room), CELLS[int(new.cell)]) == (ROOMS, 0, (0, 0))
    assert reward == pytest.approx(0.1)


def test_last_room_leads_to_the_end_tile_and_the_turn_ends_the_episode():
    _, new, reward, done = step(state_at((0, 3), room=15), FORWARD)
    assert int(new.phase) == END and reward == pytest.approx(0.1) and not done
    end = new
    _, after, reward, done = step(end, FORWARD)
    assert (reward, done, int(after.phase)) == (0.0, False, END)
    for task, good, bad in ((GREEN, RIGHT, LEFT), (RED, LEFT, RIGHT)):
        assert step(end, good, task)[2:] == (4.0, True)
        assert step(end, bad, task)[2:] == (-3.0, True)


def test_timeout_after_200_steps_with_no_reward():
    _, state = jitted(ENV)[0](jax.random.PRNGKey(0), GREEN)
    total = 0.0
    for t in range(1, 201):
        _, state, reward, done = step(state, LEFT)  # blocked on the signal tile forever
        total += reward
        assert done == (t == 200)
    assert total == 0.0


@pytest.mark.parametrize("cell_xy,phase,action", [((0, 0), END, RIGHT), ((0, 3), ROOMS, FORWARD),
                                                  ((0, 1), ROOMS, RIGHT), ((0, 0), SIGNAL, RIGHT)],
                         ids=["end-turn", "room-exit", "room-check", "signal-leave"])
def test_the_200th_step_is_a_no_op_that_ends_the_episode(cell_xy, phase, action):
    """The reference's step counter starts at 1 at the reset and its step is (same view, 0,
    done) once the counter reaches the timeout of 200: 199 actions act, the 200th does not."""
    before = state_at(cell_xy, room=15, phase=phase, t=198)  # this step is the episode's 199th
    _, moved, reward, done = step(before, action)
    assert reward > 0.0 and int(moved.t) == 199
    assert (CELLS[int(moved.cell)], int(moved.room), int(moved.phase)) != (cell_xy, 15, phase) or done
    last = before.replace(t=jnp.int32(199))  # the same position, one step later: the 200th step
    obs, after, reward, done = step(last, action)
    assert (reward, done, int(after.t)) == (0.0, True, 200)
    assert (CELLS[int(after.cell)], int(after.room), int(after.phase)) == (cell_xy, 15, phase)
    np.testing.assert_array_equal(obs, view(last))  # the unchanged view


@pytest.mark.parametrize("wait,expected_return,expected_steps", [(101, 13.7, 199), (102, 9.7, 200)])
def test_a_final_turn_on_the_200th_step_earns_nothing(wait, expected_return, expected_steps):
    """Wait on the signal tile, then play the 98 optimal steps: the final turn is the 199th
    step (it counts, +4) or the 200th (the no-op: the episode ends without the +4)."""
    reset_fn, _ = jitted(ENV)
    _, state = reset_fn(jax.random.PRNGKey(0), GREEN)
    total, steps, done = 0.0, 0, False
    while not done:
        action = LEFT if steps < wait else oracle_action(state, GREEN)
        _, state, reward, done = step(state, action)
        total, steps = total + reward, steps + 1
    assert steps == expected_steps and total == pytest.approx(expected_return, abs=1e-5)


# --------------------------------------------------------------------------- reference returns


@pytest.mark.parametrize("task", [GREEN, RED])
def test_optimal_episode_returns_13_7_in_98_steps(task):
    total, steps = run_episode(task)
    assert steps == 98 == ENV.optimal_steps
    assert total == pytest.approx(13.7, abs=1e-5) and ENV.optimal_return == pytest.approx(13.7)


def test_signal_ignoring_policy_averages_10_2():
    green, _ = run_episode(GREEN, follow_signal=False)
    red, _ = run_episode(RED, follow_signal=False)
    assert (green, red) == (pytest.approx(13.7, abs=1e-5), pytest.approx(6.7, abs=1e-5))
    tasks = jax.vmap(ENV.sample_task)(jax.random.split(jax.random.PRNGKey(3), 4000))[:, 0]
    assert set(np.unique(np.asarray(tasks))) == {-1.0, 1.0}
    share_green = float(jnp.mean(tasks > 0))
    assert abs(share_green - 0.5) < 0.03  # 50/50: 4 standard errors
    assert share_green * green + (1 - share_green) * red == pytest.approx(10.2, abs=0.25)


# --------------------------------------------------------------------------- trials


def test_trial_keeps_the_signal_and_resamples_the_rooms():
    trial = TrialWrapper(ENV, ENV.episodes_per_trial)
    step_fn = jax.jit(trial.step)
    obs, state = jax.jit(trial.reset)(jax.random.PRNGKey(5))
    signal, first_types = state.task, np.asarray(state.env_state.room_types)
    assert obs.shape == (301,) and obs[-1] == 0.0
    seen = []
    for episode in range(2):
        done, n = False, 0
        while True:
            key = jax.random.PRNGKey(100 * episode + n)
            obs, state, reward, done, info = step_fn(key, state, jnp.int32(oracle_action(state.env_state, state.task)))
            n += 1
            if bool(info["episode_done"]):
                break
        assert n == 98 and int(info["episode"]) == episode
        seen.append(np.asarray(state.env_state.room_types))
        if episode == 0:  # the next episode starts on the signal tile, same signal, new rooms, done bit 1
            assert not bool(done) and float(obs[-1]) == 1.0
            assert int(state.env_state.phase) == SIGNAL and jnp.array_equal(state.task, signal)
            np.testing.assert_array_equal(obs[:-1], ENV.reset(jax.random.PRNGKey(0), signal)[0])
    assert bool(done)  # two episodes make a trial
    assert not np.array_equal(first_types, seen[0])  # 16 fresh coin flips: equal with prob 2^-16


def test_trials_sample_new_signals():
    trial = TrialWrapper(ENV, 2)
    _, states = jax.vmap(trial.reset)(jax.random.split(jax.random.PRNGKey(0), 64))
    assert 10 < int(jnp.sum(states.task > 0)) < 54
    types = np.asarray(states.env_state.room_types)
    assert 0.4 < types.mean() < 0.6 and len({t.tobytes() for t in types}) == 64


# --------------------------------------------------------------------------- rendering


def view(state, task=GREEN, env=ENV, seed=0):
    return np.asarray(env._observe(jax.random.PRNGKey(seed), state, task))


def test_views_show_signal_colour_room_type_and_position():
    signal_state = state_at((0, 0), room=0, phase=SIGNAL)
    green, red = view(signal_state, GREEN), view(signal_state, RED)
    assert not np.array_equal(green, red)
    views = {}
    for room_type in (0, 1):
        for xy in CELLS:
            views[(room_type, xy)] = view(state_at(xy, room_type=room_type), RED)
    views["end"] = view(state_at((0, 0), phase=END))
    views["signal"] = green
    flat = [v.tobytes() for v in views.values()]
    assert len(set(flat)) == len(flat)  # 18 room views + end + signal, all distinct
    # The room index is not visible, and the signal only on the signal tile.
    np.testing.assert_array_equal(view(state_at((1, 2), room=2)), view(state_at((1, 2), room=11), RED))
    for v in views.values():
        assert v.shape == (300,) and v.min() >= -1.0 and v.max() <= 1.0


def test_rendering_is_deterministic_and_noise_is_optional():
    state = state_at((-1, 2))
    np.testing.assert_array_equal(view(state, seed=1), view(state, seed=2))
    noisy = MCLS(noise_std=0.05)
    a, b = view(state, env=noisy, seed=1), view(state, env=noisy, seed=2)
    assert not np.array_equal(a, b)
    clean = view(state)
    inside = np.abs(clean) < 0.8  # values the clip cannot reach at 4 standard deviations
    assert np.std((a - clean)[inside]) == pytest.approx(0.05, rel=0.15)


def test_noisy_views_are_clipped_to_minus_one_one():
    """The reference (mine_maze.py get_obs) adds N(0, noise^2) and clips to [-1, 1]; the
    agent's cell has a colour channel at exactly 1, so about half its noisy values hit the clip."""
    env = make_env("mc-lsn")
    reset_fn, _ = jitted(env)
    obs0, _ = reset_fn(jax.random.PRNGKey(0), GREEN)  # the reset's view is noisy too
    views = [np.asarray(obs0)] + [view(state_at(xy), env=env, seed=s) for s in range(20) for xy in CELLS]
    views = np.stack(views)
    assert views.min() >= -1.0 and views.max() <= 1.0
    agent = np.abs(view(state_at((0, 1))) - 1.0) < 1e-6  # clean values at exactly +1
    assert agent.sum() >= 4
    at_one = np.stack([view(state_at((0, 1)), env=env, seed=s) for s in range(50)])[:, agent]
    assert 0.35 < np.mean(at_one == 1.0) < 0.65
    assert not np.array_equal(views[1], view(state_at(CELLS[0])))  # the noise is there


def test_hidden_signal_variant_shows_a_blank_tile():
    hidden = MCLS(hidden_signal=True)
    signal_state = state_at((0, 0), room=0, phase=SIGNAL)
    np.testing.assert_array_equal(view(signal_state, GREEN, hidden), view(signal_state, RED, hidden))
    assert not np.array_equal(view(signal_state, GREEN, hidden), view(signal_state, GREEN))
    # Only the view changes: the reward still follows the hidden signal.
    end = state_at((0, 0), phase=END)
    assert step(end, LEFT, RED, hidden)[2] == 4.0


def test_larger_resolution_keeps_views_distinct():
    big = MCLS(resolution=42)
    assert big.observation_space.shape == (42 * 42 * 3,) and big.image_shape == (42, 42, 3)
    pairs = [(state_at((1, 1), room_type=0), state_at((1, 1), room_type=1)),
             (state_at((1, 1)), state_at((1, 2))),
             (state_at((0, 0), phase=SIGNAL), state_at((0, 0), phase=END))]
    for a, b in pairs:
        assert not np.array_equal(view(a, env=big), view(b, env=big))
    image = np.asarray(big.render(state_at((0, 0), phase=SIGNAL), GREEN))
    assert image.shape == (42, 42, 3) and np.allclose(image[21, 21], (0.1, 0.8, 0.1))  # the green square


def test_jit_and_vmap_over_1024_envs_match_single_steps():
    n = 1024
    keys = jax.random.split(jax.random.PRNGKey(0), n)
    tasks = jax.vmap(ENV.sample_task)(keys)
    obs, states = jax.jit(jax.vmap(ENV.reset))(keys, tasks)
    step_fn = jax.jit(jax.vmap(ENV.step))
    actions = jax.random.randint(jax.random.PRNGKey(1), (n,), 0, 3)
    for _ in range(3):
        obs, states, rewards, dones, _ = step_fn(keys, states, actions, tasks)
    assert obs.shape == (n, 300) and rewards.shape == (n,)
    for i in (0, 517, 1023):
        _, single = ENV.reset(keys[i], tasks[i])
        for _ in range(3):
            o, single, r, d, _ = ENV.step(keys[i], single, actions[i], tasks[i])
        np.testing.assert_array_equal(o, obs[i])
        assert float(r) == float(rewards[i]) and int(single.cell) == int(states.cell[i])


# --------------------------------------------------------------------------- model and training


def small(env: str, method: str, num_envs: int = 4, **model) -> object:
    """The family's settings with 50-step rollouts of `num_envs` envs (the family has 16; 4 are
    as good a check of the logic and a quarter of the work), a budget of 2 updates, 2
    evaluation trials and a small trial buffer."""
    cfg = family_defaults(env)
    return dataclasses.replace(
        cfg, method=method, frames=2 * num_envs * 50, eval_trials=2,
        ppo=dataclasses.replace(cfg.ppo, num_envs=num_envs, num_steps=50), model=dataclasses.replace(cfg.model, **model),
        inference=dataclasses.replace(cfg.inference, batch_trials=2, buffer_trials=16),
    )


@functools.cache
def small_learner(env: str, method: str) -> Learner:
    """One `Learner` per configuration, so the tests that build the same one share its compiled `init`."""
    return Learner(small(env, method))


def learning_config() -> object:
    """The learning check's configuration: the family's 16 envs, 6 updates of 200 steps, 16 evaluation trials."""
    cfg = dataclasses.replace(small("mc-ls", "rnn-hn", num_envs=16), frames=6 * 16 * 200, eval_trials=16)
    return dataclasses.replace(cfg, ppo=dataclasses.replace(cfg.ppo, num_steps=200))


@pytest.fixture(scope="module")
def rnn_hn_learning_run(compile_optimised):
    """(return of the initial policy, initial params, trained states, metrics) of RNN+HN on MC-LS:
    seed 73, lr 1e-3, 6 updates of 16 x 200 steps (19,200 frames). The learning check reads it,
    and so does the no-NaN check of RNN+HN on the vector views (one training instead of two)."""
    learner = Learner(learning_config())
    states = learner.init_runs([73], [1e-3])
    first = jax.tree.map(lambda x: x[0], states)
    evaluate_args = (first.params, first.norms, jax.random.PRNGKey(0))
    initial = float(compile_optimised(jax.jit(learner.evaluate), *evaluate_args)(*evaluate_args).sum())
    before = jax.tree.map(np.asarray, states.params)  # the chunk donates its input
    states, metrics = compile_optimised(learner.compile_chunk(1), states, 6)(states, 6)
    return initial, before, states, metrics


def assert_trained_without_nan(before, states, metrics) -> None:
    for name, value in metrics.items():
        assert np.all(np.isfinite(np.asarray(value))), name
    moved = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), before, states.params)["encoder"]
    assert moved["enc_state"] and max(jax.tree.leaves(moved["enc_state"])) > 0  # the observation encoder learns
    assert -6.0 - 1e-4 <= float(metrics["meta_episode_return"][0]) <= 27.4 + 1e-4  # 2 x (-3) .. 2 x 13.7


def test_family_defaults_are_the_references_mc_ls_settings():
    cfg = family_defaults("mc-ls")
    assert (cfg.ppo.num_envs, cfg.ppo.num_steps, cfg.ppo.epochs, cfg.ppo.minibatches) == (16, 800, 2, 4)
    assert (cfg.ppo.clip, cfg.ppo.entropy_coef, cfg.ppo.gamma, cfg.ppo.gae_lambda, cfg.ppo.adam_eps) == (
        0.05, 0.1, 0.95, 0.95, 1e-5)
    assert cfg.ppo.lr_schedule == "linear" and cfg.frames == 60_000_000 and cfg.seeds == (73, 20, 3, 99)
    assert (cfg.model.latent_dim, cfg.model.encoder_action_embed, cfg.model.encoder_reward_embed) == (5, 8, 8)
    assert make_env("mc-ls").observation_space.shape == (300,)
    assert family_defaults("mc-ls-42").model.obs_encoder == "cnn"


# VI+HN's encoder learns only from finished trials (2 timed-out episodes = 400 steps): 9 x 50 steps.
# RNN+HN on the plain views: test_rnn_hn_trains_on_mc_ls_without_nan, on the learning check's run.
@pytest.mark.parametrize("env,method,updates", [("mc-ls-42", "rnn-hn", 2), ("mc-lsn", "vi-hn", 9)])
def test_methods_train_on_mc_ls_without_nan(env, method, updates, compile_optimised):
    learner = small_learner(env, method)
    states = learner.init_runs([73], [3e-4])
    before = jax.tree.map(np.asarray, states.params)  # the chunk donates its input
    states, metrics = compile_optimised(learner.compile_chunk(1), states, updates)(states, updates)
    assert_trained_without_nan(before, states, metrics)


def test_rnn_hn_trains_on_mc_ls_without_nan(rnn_hn_learning_run):
    _, before, states, metrics = rnn_hn_learning_run
    assert_trained_without_nan(before, states, metrics)


def test_cnn_encoder_reads_the_image_and_the_done_bit():
    learner = small_learner("mc-ls-42", "rnn-hn")  # the training test's: its init is compiled once
    params = learner.init_runs([0], [3e-4]).params
    p = jax.tree.map(lambda x: x[0], params)
    enc = p["encoder"]
    assert set(enc["enc_state"]) == {"conv_0", "conv_1", "project"}
    assert enc["enc_state"]["conv_0"]["kernel"].shape == (4, 4, 3, 16)
    assert enc["enc_state"]["project"]["kernel"].shape == (11 * 11 * 32 + 1, 32)  # 42 -> 21 -> 11, + done bit
    assert p["policy"]["state_embed"]["project"]["kernel"].shape[1] == 256
    agent = learner.agent
    obs = jnp.zeros((2, 42 * 42 * 3 + 1)).at[1, -1].set(1.0)
    out = agent.encoder.apply({"params": enc}, obs, method=lambda m, o: m.enc_state(o))
    assert out.shape == (2, 32) and not np.allclose(out[0], out[1])


def test_cnn_on_a_vector_environment_is_a_usage_error():
    cfg = small("mc-ls", "rnn-hn", obs_encoder="cnn")
    validate(cfg)  # fine on an image environment
    with pytest.raises(UsageError, match="obs-encoder cnn.*'grid-world'.*mc-ls"):
        validate(dataclasses.replace(family_defaults("grid-world"), model=cfg.model))


def test_rnn_hn_learns_to_cross_the_rooms(rnn_hn_learning_run):
    """Fixed seed, 6 updates of 16 x 200 steps (19,200 frames): the deterministic policy goes
    from stuck on the signal tile to more than uniformly random actions earn (13.27 per trial)."""
    initial, _, _, metrics = rnn_hn_learning_run
    trained = float(metrics["meta_episode_return"][0])
    assert initial < 1.0 and trained > env_spec("mc-ls").reference_returns["random"], (initial, trained)


def test_registry_variants():
    variants = {name: make_env(name) for name in ("mc-ls", "mc-lsn", "mc-lsh", "mc-ls-42")}
    assert all(isinstance(env, MCLS) for env in variants.values())
    assert (variants["mc-lsn"].noise_std, variants["mc-lsh"].hidden_signal, variants["mc-ls-42"].resolution) == (
        0.05, True, 42)
    assert variants["mc-ls"] == MCLS() and (MCLS().episodes_per_trial, MCLS().max_episode_steps) == (2, 200)
    with pytest.raises(ValueError, match="resolution"):
        MCLS(resolution=0)


# The authors' registrations (environments/__init__.py): rooms, noise std (clipped to [-1, 1]
# whenever there is noise), hidden signal; all with timeout 200, 2 episodes, rewards 0.1 / 0.1 / 4 / -3.
@pytest.mark.parametrize("name,rooms,noise,hidden", [
    ("mc-ls", 16, 0.0, False), ("mc-lsn", 10, 0.05, False), ("mc-lsh", 16, 0.0, True), ("mc-ls-42", 16, 0.0, False)])
def test_variants_match_the_authors_registrations(name, rooms, noise, hidden):
    env = make_env(name)
    assert (env.rooms, env.noise_std, env.hidden_signal) == (rooms, noise, hidden)
    assert (env.max_episode_steps, env.episodes_per_trial) == (200, 2)
    assert (env.progress_reward, env.check_reward, env.success_reward, env.failure_reward) == (0.1, 0.1, 4.0, -3.0)
    assert env.observation_space.low == -1.0 and env.observation_space.high == 1.0


def test_mc_lsn_has_10_rooms_optimal_episode_and_reference_returns():
    env = make_env("mc-lsn")
    for task in (GREEN, RED):
        total, steps = run_episode(task, env=env)
        assert steps == 62 == env.optimal_steps  # 1 + 6 x 10 + 1
        assert total == pytest.approx(10.1, abs=1e-5) == env.optimal_return  # 0.1 + 10 x 0.6 + 4
    green, _ = run_episode(GREEN, follow_signal=False, env=env)
    red, _ = run_episode(RED, follow_signal=False, env=env)
    assert (green, red) == (pytest.approx(10.1, abs=1e-5), pytest.approx(3.1, abs=1e-5))
    reference = env_spec("mc-lsn").reference_returns
    assert reference["optimal"] == pytest.approx(2 * 10.1)
    assert reference["ignores signal"] == pytest.approx(green + red)  # 2 x the 50/50 average
    assert env_spec("mc-ls").reference_returns["optimal"] == pytest.approx(2 * MCLS().optimal_return)
