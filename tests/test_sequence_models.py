"""Sequence models beyond the GRU (LSTM, transformer, LRU): trial semantics, exact parallel
forms, replay = acting across rollout boundaries, vmapped runs, and learning on Grid-World.

The GRU's own versions of these checks are in test_ppo.py, test_learner.py and test_sequence.py."""

from __future__ import annotations

import dataclasses
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hypermeta.config import ModelConfig, PPOConfig, TrainConfig
from hypermeta.families import method_defaults
from hypermeta.methods.registry import paper_label, run_label
from hypermeta.networks.encoder import SEQUENCE_MODELS, sequence_model
from hypermeta.training import ppo
from hypermeta.training.learner import Learner

SEQUENCES = ["lstm", "transformer", "lru"]
TINY = {  # small sizes with every structural feature: two layers, two heads
    "lstm": dict(gru_size=8),
    "transformer": dict(transformer_dim=8, transformer_layers=2, transformer_heads=2),
    "lru": dict(lru_dim=8, lru_state=6, lru_layers=2),
}
T, B, F = 9, 4, 5


def _model(sequence: str, **sizes):
    return sequence_model(ModelConfig(sequence=sequence, **{**TINY[sequence], **sizes}), trial_steps=2 * T)


def _resets() -> np.ndarray:
    """Two rollouts of T steps: env 0 starts a trial at the boundary, env 1 inside each
    rollout, env 2 never after step 0 (its trial spans the boundary), env 3 twice in a row."""
    r = np.zeros((2 * T, B), bool)
    r[0] = True
    r[T, 0] = True
    r[3, 1] = r[T + 4, 1] = True
    r[5, 3] = r[6, 3] = True
    return r


def _steps(model, params, carry, xs, resets):
    ys = []
    for t in range(xs.shape[0]):
        carry, y = model.apply(params, carry, xs[t], jnp.asarray(resets[t]))
        ys.append(y)
    return carry, np.stack(ys)


def _sequence(model, params, carry, xs, resets):
    """Two rollouts through the parallel form, the second from the first's final carry."""
    seq = partial(model.apply, params, method=type(model).sequence)
    c1, y1 = seq(carry, xs[:T], jnp.asarray(resets[:T]))
    c2, y2 = seq(c1, xs[T:], jnp.asarray(resets[T:]))
    return c2, np.concatenate([y1, y2])


@pytest.mark.parametrize("sequence,window", [("lstm", 0), ("transformer", 0), ("transformer", 3), ("lru", 0)])
def test_parallel_form_equals_the_steps_and_memory_follows_trials(sequence, window):
    """`sequence` over two rollouts == 2T single steps (outputs and carry); inputs before a
    trial start never matter after it, and a trial spanning the boundary remembers its
    first rollout in the second. window 3 < trial: the cache slides (oldest step dropped), so
    memory reaches back layers x (window - 1) steps."""
    model = _model(sequence, transformer_window=window)
    xs = jax.random.normal(jax.random.PRNGKey(0), (2 * T, B, F))
    resets = _resets()
    carry0 = model.initial_carry((B,))
    params = model.init(jax.random.PRNGKey(1), carry0, xs[0], jnp.asarray(resets[0]))
    final_steps, ys_steps = _steps(model, params, carry0, xs, resets)
    final_seq, ys_seq = _sequence(model, params, carry0, xs, resets)
    np.testing.assert_allclose(ys_seq, ys_steps, rtol=1e-5, atol=2e-5)
    for a, b in zip(jax.tree.leaves(final_seq), jax.tree.leaves(final_steps), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=2e-5)

    # Perturb every env's inputs in the first rollout (steps 0..T-1).
    other = xs.at[:T].add(3.0)
    _, ys_other = _sequence(model, params, carry0, other, resets)
    moved = np.abs(ys_other - ys_seq).max(axis=-1)  # (2T, B)
    assert np.all(moved[T:, 0] == 0)  # env 0: new trial at the boundary
    assert np.all(moved[T + 4:, 1] == 0) and np.all(moved[T:T + 4, 1] > 1e-4)  # env 1: until its next start
    remembered = moved[T:, 2] > 1e-4
    assert remembered[0]  # env 2: one trial across the boundary, carried over
    if window == 0:
        assert remembered.all()  # unbounded memory within the trial
    else:  # each of the 2 layers looks window - 1 steps back: 4 steps of memory in all
        reach = TINY["transformer"]["transformer_layers"] * (window - 1)
        assert remembered[:reach].all() and not remembered[reach:].any()
    # env 3: reset at 5 and again at 6: step 6 sees nothing before it.
    single = xs.at[:6, 3].add(5.0)
    _, ys_single = _sequence(model, params, carry0, single, resets)
    np.testing.assert_array_equal(ys_single[6:, 3], ys_seq[6:, 3])


def test_every_sequence_model_has_a_name_and_sizes_near_the_grus():
    """The registry, the config's names and the reports' names agree; default sizes are
    within 35% of the GRU's parameter count with Grid-World's encoder inputs (40 features)."""
    assert set(SEQUENCE_MODELS) == {"gru", *SEQUENCES}
    counts = {}
    for name in SEQUENCE_MODELS:
        model = sequence_model(ModelConfig(sequence=name), trial_steps=60)
        carry = model.initial_carry((1,))
        shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), carry, jnp.zeros((1, 40)), jnp.ones((1,), bool))
        counts[name] = sum(x.size for x in jax.tree.leaves(shapes))
    assert counts["gru"] == 228_864  # torch's nn.GRU: 3 x (40 + 256) x 256 weights, 6 x 256 biases
    for n in counts.values():
        assert abs(n / counts["gru"] - 1) < 0.35, counts
    assert paper_label(run_label("rnn-hn", "transformer")) == "Transformer+HN"
    assert paper_label(run_label("rnn", "lru")) == "LRU"
    assert paper_label(run_label("vi-hn", "lstm")) == "VI+HN (LSTM)"
    assert run_label("RNN+HN", "gru") == "rnn-hn"


# --------------------------------------------------------------------------- in the learner

NUM_STEPS = 25  # grid-world trials are 60 steps: they straddle rollouts


def _config(sequence: str) -> TrainConfig:
    model = ModelConfig(sequence=sequence, policy_state_embed=8, policy_latent_embed=4, policy_hidden=(16,),
                        **TINY[sequence])
    return TrainConfig(env="grid-world", method="rnn-hn", model=model, seeds=(0, 1), lr=(1e-3, 1e-3),
                       ppo=PPOConfig(num_envs=4, num_steps=NUM_STEPS, minibatches=2), eval_trials=4)


@pytest.fixture(scope="module", params=SEQUENCES)
def acted(request):
    """A tiny RNN+HN learner with the sequence model and three chained rollouts."""
    learner = Learner(_config(request.param))
    state = jax.jit(learner.init)(jnp.asarray(0), jnp.asarray(1e-3, jnp.float32))
    collect = jax.jit(lambda params, carry, key: learner.collector.collect(
        learner.agent, params, state.norms, carry, jax.random.split(key, NUM_STEPS)))
    carry, rollouts = state.carry, []
    for key in jax.random.split(jax.random.PRNGKey(1), 3):
        carry, rollout = collect(state.params, carry, key)
        rollouts.append(rollout)
    return request.param, learner, state, rollouts


def test_replay_reproduces_acting_log_probs_across_rollouts(acted):
    """The PPO replay (the parallel form for the transformer and the LRU) from each rollout's
    stored carry gives the log-probs and values computed while acting, also in rollouts
    that continue a trial; the stored carry matters exactly when the trial continues."""
    sequence, learner, state, rollouts = acted
    agent, params = learner.agent, state.params
    replay = jax.jit(lambda params, r: ppo.replay_latents(agent, params, r))
    policy = jax.jit(lambda params, obs, z: agent.policy(params, state.norms.obs.normalize(obs),
                                                         agent.embed_latent(params, z)))
    for r in rollouts:
        dist, value = policy(params, r.obs, replay(params, r))
        np.testing.assert_allclose(dist.log_prob(r.action), r.log_prob, rtol=1e-5, atol=2e-5, err_msg=sequence)
        np.testing.assert_allclose(value, r.value, rtol=1e-5, atol=2e-5)
    noisy = lambda r: r.replace(init_hidden=jax.tree.map(lambda h: h + 1.0 if h.dtype != jnp.int32 else h,  # noqa: E731
                                                          r.init_hidden))
    assert rollouts[0].reset[0].all() and not rollouts[1].reset.any()
    np.testing.assert_array_equal(replay(params, rollouts[0]), replay(params, noisy(rollouts[0])))
    assert np.abs(np.asarray(replay(params, rollouts[1]) - replay(params, noisy(rollouts[1])))).max() > 1e-4


def test_vmapped_runs_equal_separate_runs(acted):
    """The replay of two runs (their own parameters and carries) vmapped in one program ==
    each run's replay alone (the rest of a vmapped update is the GRU's, test_learner.py)."""
    sequence, learner, state, rollouts = acted
    other = jax.jit(learner.init)(jnp.asarray(1), jnp.asarray(1e-3, jnp.float32)).params
    replay = lambda params, r: ppo.replay_latents(learner.agent, params, r)  # noqa: E731
    r1, r2 = rollouts[1], rollouts[2].replace(init_hidden=jax.tree.map(lambda h: h[::-1], rollouts[2].init_hidden))
    stack = lambda a, b: jax.tree.map(lambda x, y: jnp.stack([x, y]), a, b)  # noqa: E731
    both = jax.jit(jax.vmap(replay))(stack(state.params, other), stack(r1, r2))
    alone = [jax.jit(replay)(p, r) for p, r in ((state.params, r1), (other, r2))]
    for i in range(2):
        np.testing.assert_allclose(np.asarray(both[i]), np.asarray(alone[i]), rtol=1e-5, atol=2e-6, err_msg=sequence)
    assert not np.allclose(np.asarray(alone[0]), np.asarray(alone[1]))  # two different runs


# --------------------------------------------------------------------------- learning

SMALL = {  # a fifth of the default sizes or less: learning, not capacity, is what is tested
    "lstm": dict(gru_size=64),
    "transformer": dict(transformer_dim=32, transformer_heads=2, transformer_layers=1),
    "lru": dict(lru_dim=32, lru_state=32, lru_layers=1),
}
CHUNKS = {"lstm": 8, "transformer": 12, "lru": 8}
"""Chunks of 10 updates: the small transformer learns slower and more erratically (seeds 0,
1, 2 at 80 updates: mean of the last three 1.0, 16.7, 3.5; at 120: 10.7, 21.4, 5.1)."""


@pytest.mark.parametrize("sequence", SEQUENCES)
def test_sequence_model_learns_grid_world(sequence):
    """RNN+HN with a small sequence model and policy, the paper's Grid-World PPO settings
    (16 envs x 60 steps) and lr 1e-3: after 80 updates (77k frames; the transformer 120)
    the last three evaluations (32 trials each) clearly beat the random policy's -4.66.

    Measured (seed 0, 2-core CPU, XLA optimisation level 0 as in the tests): transformer
    -3.3 at 10 updates, 3.7 -0.3 8.6 10.4 12.9 at 80-120; about 30 s to compile and 40 s
    to train on a loaded machine."""
    base = method_defaults("grid-world", "rnn-hn")
    model = dataclasses.replace(base.model, sequence=sequence, policy_hidden=(64, 32), **SMALL[sequence])
    cfg = dataclasses.replace(base, model=model, seeds=(0,), lr=(1e-3,), eval_trials=32)
    learner = Learner(cfg)
    state = jax.jit(learner.init)(jnp.asarray(0), jnp.asarray(1e-3, jnp.float32))
    chunk = jax.jit(partial(learner.train_chunk, num_updates=10))
    returns = []
    for _ in range(CHUNKS[sequence]):
        state, metrics = chunk(state)
        returns.append(float(metrics["meta_episode_return"]))
    assert np.mean(returns[-3:]) > 2.0, f"{sequence}: {np.round(returns, 2)}"
    assert np.mean(returns[-3:]) > returns[0] + 4.0
