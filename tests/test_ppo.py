"""Tests of recurrent PPO: GAE, reward scaling, running statistics, the hidden state
across trials and rollouts (collect / replay), and the update itself."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hypermeta.config import GRUConfig, ModelConfig, PPOConfig, TrainConfig
from hypermeta.networks.encoder import EncoderInputs
from hypermeta.training import ppo
from hypermeta.training.conditioning import Normalizers
from hypermeta.training.learner import Learner
from hypermeta.training.normalize import RunningMeanStd

MODEL = ModelConfig(gru=GRUConfig(32), policy_state_embed=16, policy_latent_embed=8, policy_hidden=(32, 16))
TRIAL = 60  # grid-world: 4 episodes x 15 steps, every episode runs to its time limit
NUM_STEPS = 25  # not a divisor of the trial length: trials straddle rollouts
NUM_ROLLOUTS = 4  # global steps 0..99: one trial end (step 59), one trial start (step 60)
CFG = TrainConfig(
    env="grid-world",
    method="rnn",
    model=MODEL,
    ppo=PPOConfig(num_envs=4, num_steps=NUM_STEPS, minibatches=2),
    eval_trials=4,
)


# --------------------------------------------------------------------------- GAE


def gae_reference(rewards, values, dones, last_value, gamma, lam):
    T, E = rewards.shape
    adv = np.zeros((T, E))
    for e in range(E):
        running, next_value = 0.0, last_value[e]
        for t in reversed(range(T)):
            nonterminal = 0.0 if dones[t, e] else 1.0
            delta = rewards[t, e] + gamma * next_value * nonterminal - values[t, e]
            running = delta + gamma * lam * nonterminal * running
            adv[t, e] = running
            next_value = values[t, e]
    return adv, adv + values


def _random_gae_inputs(seed, T=12, E=5):
    rng = np.random.default_rng(seed)
    rewards = rng.normal(size=(T, E)).astype(np.float32)
    values = rng.normal(size=(T, E)).astype(np.float32)
    dones = rng.random((T, E)) < 0.2
    dones[4, 0] = dones[T - 1, 1] = True  # a done inside and one at the very end
    dones[:, 2] = False  # a column with no done at all
    last_value = rng.normal(size=(E,)).astype(np.float32)
    return rewards, values, dones, last_value


@pytest.mark.parametrize("seed", [0, 1])
def test_gae_matches_double_loop(seed):
    rewards, values, dones, last_value = _random_gae_inputs(seed)
    adv, targets = ppo.gae(*map(jnp.asarray, (rewards, values, dones, last_value)), 0.95, 0.9)
    ref_adv, ref_targets = gae_reference(rewards, values, dones, last_value, 0.95, 0.9)
    np.testing.assert_allclose(adv, ref_adv, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(targets, ref_targets, rtol=1e-5, atol=1e-5)


def test_advantages_are_standardised_with_torchs_unbiased_std():
    adv = jnp.asarray([[1.0, 2.0], [4.0, 9.0]])
    expected = (np.asarray(adv) - 4.0) / (np.std(np.asarray(adv), ddof=1) + 1e-5)
    np.testing.assert_allclose(ppo.standardize(adv), expected, rtol=1e-6)


def test_gae_does_not_bootstrap_across_done():
    rewards, values, dones, last_value = _random_gae_inputs(2)
    adv, _ = ppo.gae(*map(jnp.asarray, (rewards, values, dones, last_value)), 0.95, 0.95)
    # Everything after the done at (t=4, env 0) and the bootstrap value must not matter
    # for steps up to and including t=4 of env 0.
    r2, v2, lv2 = rewards.copy(), values.copy(), last_value.copy()
    r2[5:, 0] += 100.0
    v2[5:, 0] -= 50.0
    lv2[0] += 1000.0
    adv2, _ = ppo.gae(*map(jnp.asarray, (r2, v2, dones, lv2)), 0.95, 0.95)
    np.testing.assert_array_equal(np.asarray(adv2)[:5, 0], np.asarray(adv)[:5, 0])
    assert np.all(np.abs(np.asarray(adv2)[5:, 0] - np.asarray(adv)[5:, 0]) > 1.0)
    # At a done step the advantage is just r - V.
    np.testing.assert_allclose(adv[4, 0], rewards[4, 0] - values[4, 0], rtol=1e-6)
    # Without a done the bootstrap value reaches the first step: gamma^T lam^(T-1) dV
    lv3 = last_value.copy()
    lv3[2] += 1.0
    adv3, _ = ppo.gae(*map(jnp.asarray, (rewards, values, dones, lv3)), 0.95, 0.95)
    np.testing.assert_allclose(adv3[0, 2] - adv[0, 2], 0.95**12 * 0.95**11, rtol=1e-3)


# --------------------------------------------------------------------------- running statistics


def rms_with_prior(data, prior_count=1e-4):
    """Exact mean/var of the data pooled with the prior pseudo-sample (mean 0, var 1)."""
    data = np.asarray(data, np.float64)
    n = data.shape[0]
    m, v = data.mean(0), data.var(0)
    total = n + prior_count
    mean = n * m / total
    var = (prior_count * 1.0 + n * v + m**2 * prior_count * n / total) / total
    return mean, var, total


def test_running_mean_std_matches_numpy_over_batches():
    rng = np.random.default_rng(0)
    batches = [rng.normal(3.0, 2.0, size=(n, 4, 3)) * np.array([1.0, 0.1, 5.0]) for n in (7, 20, 3)]
    rms = RunningMeanStd.create((3,))
    for b in batches:
        rms = rms.update(jnp.asarray(b, jnp.float32))
    data = np.concatenate([b.reshape(-1, 3) for b in batches])
    mean, var, count = rms_with_prior(data)
    np.testing.assert_allclose(rms.mean, mean, rtol=1e-5)
    np.testing.assert_allclose(rms.var, var, rtol=1e-4)
    np.testing.assert_allclose(rms.count, count, rtol=1e-6)
    # and the prior is negligible at this size
    np.testing.assert_allclose(rms.mean, data.mean(0), rtol=1e-4)
    np.testing.assert_allclose(rms.var, data.var(0), rtol=1e-4)
    x = jnp.asarray(data[:5], jnp.float32)
    np.testing.assert_allclose(rms.normalize(x), (data[:5] - mean) / np.sqrt(var + 1e-8), rtol=1e-4, atol=1e-5)


def test_running_mean_std_scalar():
    rng = np.random.default_rng(1)
    batches = [rng.normal(-1.0, 0.5, size=(5, 6)) for _ in range(3)]
    rms = RunningMeanStd.create()
    for b in batches:
        rms = rms.update(jnp.asarray(b, jnp.float32))
    mean, var, _ = rms_with_prior(np.concatenate([b.ravel() for b in batches]))
    np.testing.assert_allclose(rms.mean, mean, rtol=1e-5)
    np.testing.assert_allclose(rms.var, var, rtol=1e-4)


def _scaler_reference(ret0, rewards, dones, gamma, reset="own"):
    """The reference's VecNormalize.step_wait: update the running return, zero it where the
    trial ended, *then* record it in the statistics; with reset "all", then zero every
    environment's return when any trial ended (`reset_env` -> `VecNormalize.reset`)."""
    ret = ret0.astype(np.float64).copy()
    returns = np.zeros(rewards.shape)
    for t in range(rewards.shape[0]):
        ret = ret * gamma + rewards[t]
        ret = np.where(dones[t], 0.0, ret)
        returns[t] = ret
        if reset == "all" and dones[t].any():
            ret = np.zeros_like(ret)
    return ret, returns


@pytest.mark.parametrize("reset", ["all", "own"])
def test_reward_scaler_against_python_loop(reset):
    rng = np.random.default_rng(3)
    T, E, gamma = 10, 4, 0.9
    scaler = ppo.RewardScaler.create(E)
    ret = np.zeros(E)
    all_returns = []
    for _ in range(2):  # two rollouts: the running return carries over
        rewards = rng.normal(1.0, 1.0, size=(T, E)).astype(np.float32)
        dones = rng.random((T, E)) < 0.25
        dones[T - 1, 0] = True
        dones[:, 1] = False
        scaler, scaled = scaler.scale(jnp.asarray(rewards), jnp.asarray(dones), gamma, 10.0, reset)
        ret, returns = _scaler_reference(ret, rewards, dones, gamma, reset)
        all_returns.append(returns.ravel())
        np.testing.assert_allclose(scaler.ret, ret, rtol=1e-5, atol=1e-6)
        assert float(scaler.ret[0]) == 0.0  # reset by the done at the last step
        mean, var, _ = rms_with_prior(np.concatenate(all_returns))
        np.testing.assert_allclose(scaler.rms.mean, mean, rtol=1e-4)
        np.testing.assert_allclose(scaler.rms.var, var, rtol=1e-4)
        # no mean subtraction: reward / std of the (updated) return statistics
        np.testing.assert_allclose(scaled, rewards / np.sqrt(var + 1e-8), rtol=1e-4, atol=1e-6)


def test_reward_scaler_resets_every_return_at_any_trial_end_by_default():
    """The reference zeroes every environment's running return when any trial ends: env 1
    (no trial end) restarts its return with env 0's trial end, which shortens the returns
    recorded and so scales rewards up; "own" keeps env 1's return running."""
    rewards = jnp.ones((6, 2))
    dones = jnp.zeros((6, 2), bool).at[2, 0].set(True)
    default, _ = ppo.RewardScaler.create(2).scale(rewards, dones, 1.0, 10.0)
    own, _ = ppo.RewardScaler.create(2).scale(rewards, dones, 1.0, 10.0, "own")
    np.testing.assert_allclose(default.ret, [3.0, 3.0])  # both restarted after step 2
    np.testing.assert_allclose(own.ret, [3.0, 6.0])
    assert float(default.rms.var) < float(own.rms.var)
    assert PPOConfig().return_reset == "all"


def test_reward_scaler_clips():
    rewards = jnp.asarray(np.array([[1.0, -1.0], [100.0, -100.0], [0.01, 0.0]], np.float32))
    dones = jnp.zeros((3, 2), bool)
    scaler = ppo.RewardScaler.create(2)
    _, scaled = scaler.scale(rewards, dones, 0.99, 1.0)
    _, unclipped = scaler.scale(rewards, dones, 0.99, 1e9)
    scaled, unclipped = np.asarray(scaled), np.asarray(unclipped)
    assert np.abs(unclipped).max() > 1.0  # the clip is active on this data
    np.testing.assert_allclose(scaled, np.clip(unclipped, -1.0, 1.0), rtol=1e-6)
    assert scaled.max() == 1.0 and scaled.min() == -1.0


# --------------------------------------------------------------------------- hidden state across trials


@pytest.fixture(scope="module")
def rig():
    """A small RNN learner, a non-trivial obs normaliser and 4 chained rollouts."""
    learner = Learner(CFG)
    agent = learner.agent
    state = jax.jit(learner.init)(jnp.asarray(0), jnp.asarray(1e-3, jnp.float32))
    rng = np.random.default_rng(0)
    obs_rms = Normalizers.create(3, 10, 2).replace(
        obs=RunningMeanStd.create((3,)).update(jnp.asarray(rng.uniform(0, 4, size=(50, 3)), jnp.float32)))

    collector = learner.collector
    collect_fn = jax.jit(lambda params, carry, key: collector.collect(agent, params, obs_rms, carry,
                                                                     jax.random.split(key, NUM_STEPS)))
    carries, rollouts = [state.carry], []
    for key in jax.random.split(jax.random.PRNGKey(1), NUM_ROLLOUTS):
        carry, rollout = collect_fn(state.params, carries[-1], key)
        carries.append(carry)
        rollouts.append(rollout)

    replay = jax.jit(lambda params, rollout: ppo.replay_latents(agent, params, rollout))
    encode = jax.jit(lambda params, h, pa, pr, o, r: agent.encode(params, h, EncoderInputs(pa, pr, o, r)))
    policy = jax.jit(lambda params, obs, latent: agent.policy(params, obs_rms.obs.normalize(obs),
                                                              agent.embed_latent(params, latent)))
    return dict(
        learner=learner, agent=agent, params=state.params, state=state, obs_rms=obs_rms,
        carries=carries, rollouts=rollouts, replay=replay, encode=encode, policy=policy,
    )


def _cat(rollouts, field):
    return np.concatenate([np.asarray(getattr(r, field)) for r in rollouts], axis=0)


def manual_latents(rig, obs, prev_action, prev_reward, h=None):
    """Encoder run step by step from a fresh zero state (or h), never resetting."""
    E = obs.shape[1]
    h = jnp.zeros((E, MODEL.gru.size)) if h is None else h
    no_reset = jnp.zeros((E,), bool)
    latents = []
    for t in range(obs.shape[0]):
        h, z = rig["encode"](rig["params"], h, prev_action[t], prev_reward[t], obs[t], no_reset)
        latents.append(np.asarray(z))
    return np.stack(latents), h


def test_reset_flags_mark_exactly_the_trial_starts(rig):
    rollouts = rig["rollouts"]
    reset, done = _cat(rollouts, "reset"), _cat(rollouts, "done")
    steps = NUM_STEPS * NUM_ROLLOUTS
    assert reset.shape == done.shape == (steps, CFG.ppo.num_envs)
    starts = [t for t in range(steps) if t % TRIAL == 0]
    ends = [t for t in range(steps) if t % TRIAL == TRIAL - 1]
    np.testing.assert_array_equal(np.where(reset.all(1))[0], starts)
    np.testing.assert_array_equal(np.where(reset.any(1))[0], starts)
    np.testing.assert_array_equal(np.where(done.any(1))[0], ends)
    # reset[t] == done[t-1], also across rollout boundaries
    np.testing.assert_array_equal(reset[1:], done[:-1])
    assert rollouts[0].reset[0].all()
    # at a trial start the encoder inputs are those of a fresh trial
    obs, pa, pr, episode = (_cat(rollouts, f) for f in ("obs", "prev_action", "prev_reward", "episode"))
    for t in starts:
        np.testing.assert_array_equal(obs[t], np.zeros_like(obs[t]))  # start cell, done bit 0
        assert np.all(pa[t] == 0) and np.all(pr[t] == 0) and np.all(episode[t] == 0)
    # inside the trial prev_action is the one-hot of the previous action and prev_reward its reward
    action, reward = _cat(rollouts, "action"), _cat(rollouts, "reward")
    inside = [t for t in range(1, steps) if t not in starts]
    np.testing.assert_array_equal(pa[inside], np.eye(5)[action[[t - 1 for t in inside]]])
    np.testing.assert_array_equal(pr[inside], reward[[t - 1 for t in inside]])


def test_hidden_state_is_reset_exactly_at_trial_starts(rig):
    replay, params = rig["replay"], rig["params"]
    rollouts = rig["rollouts"]
    noise = jnp.asarray(np.random.default_rng(5).normal(size=rollouts[0].init_hidden.shape), jnp.float32)

    # First rollout: it starts a trial at t=0, so the initial hidden state is irrelevant.
    r0 = rollouts[0]
    np.testing.assert_array_equal(replay(params, r0), replay(params, r0.replace(init_hidden=r0.init_hidden + noise)))

    # Third rollout (global steps 50..74): trial start at t=10.
    r2 = rollouts[2]
    t0 = TRIAL - 2 * NUM_STEPS
    assert r2.reset[t0].all() and not r2.reset[:t0].any()
    base = np.asarray(replay(params, r2))
    perturbed = np.asarray(replay(params, r2.replace(init_hidden=r2.init_hidden + noise)))
    assert np.all(np.abs(base[:t0] - perturbed[:t0]).max(axis=(1, 2)) > 1e-6)  # before: depends on h
    np.testing.assert_array_equal(base[t0:], perturbed[t0:])  # from the trial start on: does not

    # Manual re-run of the second trial from a fresh zero state (no reset flags at all).
    obs = np.concatenate([np.asarray(r2.obs)[t0:], np.asarray(rollouts[3].obs)])
    pa = np.concatenate([np.asarray(r2.prev_action)[t0:], np.asarray(rollouts[3].prev_action)])
    pr = np.concatenate([np.asarray(r2.prev_reward)[t0:], np.asarray(rollouts[3].prev_reward)])
    manual, _ = manual_latents(rig, obs, pa, pr)
    replayed = np.concatenate([base[t0:], np.asarray(replay(params, rollouts[3]))])
    np.testing.assert_allclose(replayed, manual, rtol=1e-5, atol=1e-5)


def test_hidden_state_is_carried_across_rollouts(rig):
    rollouts, carries, params = rig["rollouts"], rig["carries"], rig["params"]
    for i in range(1, NUM_ROLLOUTS):
        np.testing.assert_array_equal(rollouts[i].init_hidden, carries[i].hidden)
    r1 = rollouts[1]
    assert not r1.reset[0].any()  # step 25 is inside the first trial
    assert np.linalg.norm(np.asarray(r1.init_hidden), axis=1).min() > 0.1

    # The whole first trial (global steps 0..59) encoded from scratch in one go
    # equals the latents replayed rollout by rollout from the stored init_hidden.
    n = TRIAL - 2 * NUM_STEPS
    fields = {f: np.concatenate([_cat(rollouts[:2], f), np.asarray(getattr(rollouts[2], f))[:n]]) for f in ("obs", "prev_action", "prev_reward")}
    manual, h_end = manual_latents(rig, fields["obs"], fields["prev_action"], fields["prev_reward"])
    replayed = np.concatenate([np.asarray(rig["replay"](params, r)) for r in rollouts[:2]] + [np.asarray(rig["replay"](params, rollouts[2]))[:n]])
    np.testing.assert_allclose(replayed, manual, rtol=1e-5, atol=1e-5)
    # and the stored init_hidden of rollout 1 is the encoder state after rollout 0
    _, h_after_r0 = manual_latents(rig, *(np.asarray(getattr(rollouts[0], f)) for f in ("obs", "prev_action", "prev_reward")))
    np.testing.assert_allclose(r1.init_hidden, h_after_r0, rtol=1e-5, atol=1e-5)


def test_replay_over_joined_rollouts_equals_rollout_by_rollout(rig):
    """Replaying two consecutive rollouts as one sequence from the first init_hidden
    gives the latents of replaying each from its own stored init_hidden."""
    r1, r2 = rig["rollouts"][1:3]
    joined = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), r1.replace(init_hidden=None, last_value=None), r2.replace(init_hidden=None, last_value=None))
    joined = joined.replace(init_hidden=r1.init_hidden, last_value=r2.last_value)
    lat_joined = np.asarray(ppo.replay_latents(rig["agent"], rig["params"], joined))
    lat_split = np.concatenate([np.asarray(rig["replay"](rig["params"], r)) for r in (r1, r2)])
    np.testing.assert_allclose(lat_joined, lat_split, rtol=1e-5, atol=1e-6)


def test_replay_reproduces_acting_log_probs_and_values(rig):
    params, policy = rig["params"], rig["policy"]
    for r in rig["rollouts"]:
        latents = rig["replay"](params, r)
        dist, value = policy(params, r.obs, latents)
        np.testing.assert_allclose(dist.log_prob(r.action), r.log_prob, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(value, r.value, rtol=1e-5, atol=1e-5)
    # last_value is the value of the observation after the last step (the next rollout's first)
    r, nxt = rig["rollouts"][1], rig["rollouts"][2]
    np.testing.assert_allclose(r.last_value, nxt.value[0], rtol=1e-5, atol=1e-5)

    # PPO's first-epoch ratio is 1: zero KL, nothing clipped
    adv = jnp.asarray(np.random.default_rng(0).normal(size=r.reward.shape), jnp.float32)
    _, (stats, _) = jax.jit(lambda p: ppo.ppo_loss(p, rig["agent"], rig["obs_rms"], r, _every(r), adv, r.value, CFG.ppo))(params)
    assert abs(float(stats["approx_kl"])) < 1e-6
    assert float(stats["clip_fraction"]) == 0.0


def test_ppo_loss_changes_when_latents_would_be_wrong(rig):
    """Guard for the test above: with a wrong initial hidden state, acting log-probs
    are no longer reproduced (rollout 1 has no reset at t=0)."""
    params, policy, r = rig["params"], rig["policy"], rig["rollouts"][1]
    latents = rig["replay"](params, r.replace(init_hidden=jnp.zeros_like(r.init_hidden)))
    dist, _ = policy(params, r.obs, latents)
    assert np.abs(np.asarray(dist.log_prob(r.action)) - np.asarray(r.log_prob)).max() > 1e-6


# --------------------------------------------------------------------------- the update


def _every(rollout):
    """Flat indices of every transition of a rollout (one minibatch of all of them)."""
    return jnp.arange(rollout.reward.size)


def _advantages(rollout, scaled, cfg):
    adv, targets = ppo.gae(scaled, rollout.value, rollout.done, rollout.last_value, cfg.gamma, cfg.gae_lambda)
    return (adv - adv.mean()) / (adv.std() + 1e-8), targets


def test_one_update_step_decreases_the_loss(rig):
    learner, agent, obs_rms = rig["learner"], rig["agent"], rig["obs_rms"]
    cfg = dataclasses.replace(CFG.ppo, epochs=1, minibatches=1)
    rollout = rig["rollouts"][2]  # contains a trial end and a trial start
    _, scaled = ppo.RewardScaler.create(CFG.ppo.num_envs).scale(rollout.reward, rollout.done, cfg.gamma, cfg.reward_clip)
    adv, targets = _advantages(rollout, scaled, cfg)
    loss_fn = jax.jit(lambda p: ppo.ppo_loss(p, agent, obs_rms, rollout, _every(rollout), adv, targets, cfg))
    update = jax.jit(
        lambda p, o: ppo.update(agent, learner.tx, cfg, p, o, obs_rms, rollout, scaled, jnp.float32(3e-4), jax.random.PRNGKey(0))
    )
    params = rig["params"]
    loss0, _ = loss_fn(params)
    new_params, _, stats = update(params, learner.tx.init(params))
    loss1, stats1 = loss_fn(new_params)
    assert float(loss1) < float(loss0) - 1e-4, (float(loss0), float(loss1))
    np.testing.assert_allclose(stats["policy_loss"], loss_fn(params)[1][0]["policy_loss"], rtol=1e-5, atol=1e-6)
    # every parameter moved (Adam's first step is ~lr * sign(g))
    moved = jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()), params, new_params)
    assert min(jax.tree.leaves(moved)) > 0


def test_encoder_gets_gradients_through_bptt(rig):
    agent, obs_rms, params = rig["agent"], rig["obs_rms"], rig["params"]
    cfg = CFG.ppo
    rollout = rig["rollouts"][1]
    _, scaled = ppo.RewardScaler.create(cfg.num_envs).scale(rollout.reward, rollout.done, cfg.gamma, cfg.reward_clip)
    adv, targets = _advantages(rollout, scaled, cfg)
    grads = jax.jit(jax.grad(lambda p: ppo.ppo_loss(p, agent, obs_rms, rollout, _every(rollout), adv, targets, cfg)[0]))(params)
    encoder = grads["encoder"]
    assert set(encoder) == {"enc_state", "enc_reward", "gru", "enc_head"}
    for name, g in [*encoder.items(), ("latent_embed", grads["policy"]["latent_embed"])]:
        norm = float(jnp.sqrt(sum(jnp.sum(x**2) for x in jax.tree.leaves(g))))
        assert norm > 1e-6, name
    # The GRU's recurrent weights get gradient too (credit flows back through time).
    hh = [v for k, v in jax.tree_util.tree_leaves_with_path(encoder["gru"]) if "h" in jax.tree_util.keystr(k)]
    assert hh and max(float(jnp.abs(x).max()) for x in hh) > 0


def test_optimizer_clips_encoder_and_policy_separately(rig):
    """Encoder and actor-critic gradients are clipped by separate global norms.

    Adam's first direction is g_clipped / (|g_clipped| + eps). Tiny policy gradients
    (1e-4) next to huge encoder gradients give ~0.9 if clipped on their own (they are
    below max_grad_norm, so untouched), but ~0.01 if clipped jointly with the encoder
    (scaled to ~1e-7, below eps)."""
    params = rig["params"]
    tx = ppo.make_optimizer(CFG.ppo)
    assert set(params) == {"encoder", "policy"}
    grads = {
        group: jax.tree.map(lambda x, g=group: jnp.full_like(x, 10.0 if g == "encoder" else 1e-4), sub)
        for group, sub in params.items()
    }
    direction, _ = jax.jit(lambda g, p: tx.update(g, tx.init(p), p))(grads, params)
    for group, layers in direction.items():
        for k, sub in layers.items():
            for x in jax.tree.leaves(sub):
                assert float(jnp.min(x)) > 0.5, (group, k)


# --------------------------------------------------------------------------- the reference's semantics


def test_proper_time_limits_zero_the_timeout_steps_advantage():
    """`use_proper_time_limits` (online_storage._compute_returns): the step that ends a trial
    at its time limit gets advantage 0 and its own value as target; the steps before it
    bootstrap from V(s_t) instead of a terminal 0."""
    rewards = jnp.asarray([[1.0], [2.0], [3.0]])
    values = jnp.asarray([[0.5], [0.25], [4.0]])
    dones = jnp.asarray([[False], [False], [True]])
    timeouts = dones
    gamma, lam = 0.9, 0.8
    adv, target = ppo.gae(rewards, values, dones, jnp.asarray([7.0]), gamma, lam, timeouts)
    assert float(adv[2, 0]) == 0.0 and float(target[2, 0]) == 4.0
    d1 = 2.0 + gamma * 4.0 - 0.25  # bootstraps from V(s_2); the timeout step adds nothing
    d0 = 1.0 + gamma * 0.25 - 0.5
    np.testing.assert_allclose(adv[:, 0], [d0 + gamma * lam * d1, d1, 0.0], rtol=1e-6)
    # Terminal semantics (the default on Grid and MC-LS): the last step is a true end.
    adv_t, _ = ppo.gae(rewards, values, dones, jnp.asarray([7.0]), gamma, lam)
    np.testing.assert_allclose(adv_t[2, 0], 3.0 - 4.0, rtol=1e-6)


def test_trials_report_timeouts_only_at_the_trial_end(rig):
    """Grid-World's episodes all end at their time limit; only the trial's last one is a
    timeout for PPO (episode ends inside a trial are never cut, pitfall 7.3)."""
    timeout, done = _cat(rig["rollouts"], "timeout"), _cat(rig["rollouts"], "done")
    np.testing.assert_array_equal(timeout, done)
    assert done.any()


def test_transition_minibatches_partition_all_transitions():
    """The reference's feed_forward_generator: each minibatch is a random subset of all
    T x E transitions, so over an update a minibatch mixes environments and time steps."""
    T, E, M = 60, 16, 4
    idx = np.asarray(ppo.minibatch_indices(jax.random.PRNGKey(0), T, E, M, "transitions"))
    assert idx.shape == (M, T * E // M)
    np.testing.assert_array_equal(np.sort(idx.ravel()), np.arange(T * E))
    for mb in idx:
        steps, envs = mb // E, mb % E
        assert len(np.unique(envs)) == E  # every environment in every minibatch
        assert steps.min() < 5 and steps.max() > T - 5  # the whole step range
    # "envs" (the previous default): whole sequences of E / M environments per minibatch.
    idx = np.asarray(ppo.minibatch_indices(jax.random.PRNGKey(0), T, E, M, "envs"))
    np.testing.assert_array_equal(np.sort(idx.ravel()), np.arange(T * E))
    for mb in idx:
        assert len(np.unique(mb % E)) == E // M and len(mb) == T * E // M


@pytest.mark.parametrize("mode", ["transitions", "envs"])
def test_update_replays_the_encoder_before_every_minibatch(rig, mode):
    """`update` equals the explicit loop: per minibatch, the loss on its transitions with
    the encoder replayed over the whole rollout with the *current* parameters."""
    learner, agent, obs_rms = rig["learner"], rig["agent"], rig["obs_rms"]
    cfg = dataclasses.replace(CFG.ppo, epochs=1, minibatches=2, minibatch=mode)
    rollout = rig["rollouts"][2]
    _, scaled = ppo.RewardScaler.create(cfg.num_envs).scale(rollout.reward, rollout.done, cfg.gamma, cfg.reward_clip)
    key, lr = jax.random.PRNGKey(5), jnp.float32(1e-3)
    params0, opt0 = rig["params"], learner.tx.init(rig["params"])
    new_params, _, _ = jax.jit(lambda p, o: ppo.update(agent, learner.tx, cfg, p, o, obs_rms, rollout, scaled, lr, key))(
        params0, opt0)

    adv, targets = ppo.gae(scaled, rollout.value, rollout.done, rollout.last_value, cfg.gamma, cfg.gae_lambda)
    adv = ppo.standardize(adv)
    order = ppo.minibatch_indices(jax.random.split(key, 1)[0], NUM_STEPS, cfg.num_envs, 2, mode)
    grad = jax.jit(jax.grad(lambda p, i: ppo.ppo_loss(p, agent, obs_rms, rollout, i, adv, targets, cfg)[0]))
    params, opt = params0, opt0
    for idx in order:
        direction, opt = learner.tx.update(grad(params, idx), opt, params)
        params = jax.tree.map(lambda p, d: p - lr * d, params, direction)
    for a, b in zip(jax.tree.leaves(new_params), jax.tree.leaves(params), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_a_single_late_transition_trains_the_encoder_through_the_whole_rollout(rig):
    """Full BPTT: the loss of one transition at the rollout's last step reaches the GRU's
    recurrent weights through every earlier step (the replay starts at init_hidden)."""
    agent, obs_rms, params = rig["agent"], rig["obs_rms"], rig["params"]
    rollout = rig["rollouts"][1]  # no trial boundary inside: one long sequence per env
    adv = jnp.ones_like(rollout.reward)
    last = jnp.asarray([(NUM_STEPS - 1) * CFG.ppo.num_envs])
    g_init = jax.grad(lambda h: ppo.ppo_loss(params, agent, obs_rms, rollout.replace(init_hidden=h), last, adv,
                                             rollout.value, CFG.ppo)[0])(rollout.init_hidden)
    assert float(jnp.abs(g_init[0]).max()) > 0  # env 0's first hidden state matters
    assert float(jnp.abs(g_init[1:]).max()) == 0.0  # the other environments' do not


def test_encoder_has_its_own_adam_eps(rig):
    """The reference's encoder optimiser is a separate torch Adam (eps 1e-8) while the
    policy's uses 1e-5 on Grid: a gradient of 1e-6 moves the encoder by ~lr, the policy by ~lr/11."""
    params = rig["params"]  # a fresh run's parameters of `CFG`
    tx = ppo.make_optimizer(CFG.ppo)
    grads = jax.tree.map(lambda x: jnp.full_like(x, 1e-6), params)
    direction, _ = tx.update(grads, tx.init(params), params)
    assert set(direction) == {"encoder", "policy"}
    for group, layers in direction.items():
        for name, sub in layers.items():
            value = float(jax.tree.leaves(sub)[0].ravel()[0])
            expected = 1e-6 / (1e-6 + (1e-8 if group == "encoder" else 1e-5))
            np.testing.assert_allclose(value, expected, rtol=1e-3, err_msg=f"{group}/{name}")
