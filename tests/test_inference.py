"""Tests of the task-inference and VariBAD methods: the KL, the ELBO's terms, the trial
buffer, stop-gradients, the BI target, pre-training (budget, "++" vs reset) and that
every method trains on every grid-world."""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hypermeta.config import GRUConfig, InferenceConfig, ModelConfig, PPOConfig, TrainConfig
from hypermeta.envs.registry import ENVIRONMENTS
from hypermeta.methods import METHODS, get_method
from hypermeta.networks.agent import PARAM_GROUPS
from hypermeta.networks.decoders import Decoders
from hypermeta.networks.init import TANH_GAIN
from hypermeta.training import conditioning, inference, ppo
from hypermeta.training.learner import Learner
from hypermeta.training.trial_buffer import TrialBuffer, Trials

MODEL = ModelConfig(gru=GRUConfig(16), policy_state_embed=16, policy_latent_embed=8, policy_hidden=(16, 8))
INFERENCE = InferenceConfig(pretrain_updates=2, batch_trials=4, buffer_trials=16, updates=1)
PPO = PPOConfig(num_envs=4, num_steps=30, minibatches=2)


def small_cfg(method: str, env: str = "grid-world", **inference) -> TrainConfig:
    return TrainConfig(env=env, method=method, model=MODEL, ppo=PPO, eval_trials=2, frames=PPO.frames_per_update * 6,
                       inference=dataclasses.replace(INFERENCE, **inference))


@functools.cache
def learner_and_state(method: str, env: str = "grid-world") -> tuple[Learner, object]:
    learner = Learner(small_cfg(method, env))
    return learner, jax.jit(learner.init)(jnp.int32(0), jnp.float32(1e-3))


@functools.cache
def jitted_update(method: str, env: str = "grid-world"):
    learner, _ = learner_and_state(method, env)
    return jax.jit(learner.train_update)


def tree_allclose(a, b, **kw) -> bool:
    return all(jax.tree.leaves(jax.tree.map(lambda x, y: bool(np.allclose(x, y, **kw)), a, b)))


def group(params, *names: str):
    """The parameter groups `names` (top-level keys of the agent's parameters, PARAM_GROUPS)."""
    assert set(names) <= set(PARAM_GROUPS) and set(names) <= set(params), (names, set(params))
    return {name: params[name] for name in names}


def layers(params, group_name: str, prefixes: tuple[str, ...]):
    """The layers of one group whose names start with `prefixes` (e.g. the actor and critic of "policy")."""
    found = {k: v for k, v in params[group_name].items() if k.startswith(prefixes)}
    assert found, (group_name, prefixes)
    return found


def raw_task_prediction(agent, params, z):
    """The task decoder's prediction for z (the ELBO only reads its squared error)."""
    return agent.decoders.apply({"params": params["decoder"]}, z, method=lambda m, z: m.dec_task(z))


# --------------------------------------------------------------------------- KL


def test_gaussian_kl_matches_the_closed_form():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=(7, 3)), rng.normal(size=(7, 3))
    s1, s2 = rng.uniform(0.2, 2.0, size=(7, 3)), rng.uniform(0.2, 2.0, size=(7, 3))
    # Per dimension: log(s2 / s1) + (s1^2 + (mu1 - mu2)^2) / (2 s2^2) - 1/2, summed over dimensions.
    expected = np.sum(np.log(s2 / s1) + (s1**2 + (mu1 - mu2) ** 2) / (2 * s2**2) - 0.5, axis=-1)
    got = inference.gaussian_kl(jnp.asarray(mu1), jnp.asarray(np.log(s1**2)), jnp.asarray(mu2), jnp.asarray(np.log(s2**2)))
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    same = inference.gaussian_kl(jnp.asarray(mu1), jnp.asarray(np.log(s1**2)), jnp.asarray(mu1), jnp.asarray(np.log(s1**2)))
    np.testing.assert_allclose(same, 0.0, atol=1e-6)
    # KL(N(1, 1) || N(0, 1)) = 1/2 per dimension.
    np.testing.assert_allclose(inference.gaussian_kl(jnp.ones(4), jnp.zeros(4), jnp.zeros(4), jnp.zeros(4)), 2.0)


# --------------------------------------------------------------------------- ELBO on a hand-made trial


def hand_made_trials(learner: Learner) -> Trials:
    """Two grid-world trials of length 5 and 3 (padded to 6) with one goal hit each."""
    L, obs_dim, task_dim = 6, 3, 2
    trials = Trials.zeros(2, L, obs_dim, 5, 2, task_dim)
    pos = np.array([[[0, 0], [1, 0], [2, 0], [2, 1], [2, 2], [0, 0]], [[0, 0], [0, 1], [0, 2], [0, 0], [0, 0], [0, 0]]],
                   np.float32)
    nxt = np.concatenate([pos[:, 1:], pos[:, -1:]], axis=1)
    obs = np.concatenate([pos, np.zeros((2, L, 1), np.float32)], axis=-1)
    actions = np.eye(5, dtype=np.float32)[np.array([[2, 2, 1, 1, 0, 0], [1, 1, 3, 0, 0, 0]])]
    hit = np.zeros((2, L), bool)
    hit[0, 3], hit[1, 1] = True, True  # goals (2, 2) and (0, 2)
    reward = np.where(hit, 1.0, -0.1).astype(np.float32)
    cell = (nxt[..., 1] * 5 + nxt[..., 0]).astype(np.int32)
    return trials.replace(obs=jnp.asarray(obs), action=jnp.asarray(actions), reward=jnp.asarray(reward),
                          next_obs=jnp.asarray(nxt), cell=jnp.asarray(cell), cell_hit=jnp.asarray(hit),
                          task=jnp.asarray([[2.0, 2.0], [0.0, 2.0]]), length=jnp.asarray([5, 3], jnp.int32))


@pytest.mark.parametrize("method", ["vi", "ti-naive"])
def test_elbo_terms_on_a_hand_made_trial(method):
    learner, state = learner_and_state(method)
    agent, params, norms, cfg = learner.agent, state.params, state.norms, learner.cfg.inference
    trials = hand_made_trials(learner)
    key = jax.random.PRNGKey(3)
    _, stats = inference.elbo_loss(params, agent, norms, trials, key, cfg)

    # Independent computation, term by term, with explicit loops over valid steps.
    ld = MODEL.latent_dim
    latents = np.asarray(inference.encode_trials(agent, params, trials))
    mu, logvar = latents[..., :ld], latents[..., ld:]
    noise_key = jax.random.split(key, 3)[0]
    z = mu + np.exp(0.5 * logvar) * np.asarray(jax.random.normal(noise_key, mu.shape))
    logits = np.asarray(agent.decoder(params, Decoders.reward_logits, jnp.asarray(z)))
    kl = rec = task = 0.0
    lengths = [5, 3]
    for b, length in enumerate(lengths):
        for t in range(length):
            pm, plv = (mu[b, t - 1], logvar[b, t - 1]) if t else (np.zeros(ld), np.zeros(ld))
            s1, s2 = np.exp(0.5 * logvar[b, t]), np.exp(0.5 * plv)
            kl += np.sum(np.log(s2 / s1) + (s1**2 + (mu[b, t] - pm) ** 2) / (2 * s2**2) - 0.5)
            for j in range(length):  # every ELBO term decodes the whole trial, past and future
                x, y = logits[b, t, int(trials.cell[b, j])], float(trials.cell_hit[b, j])
                rec += max(x, 0) - x * y + math.log1p(math.exp(-abs(x)))
            if method == "ti-naive":
                pred = np.asarray(raw_task_prediction(agent, params, jnp.asarray(z[b, t])))
                task += np.mean((pred - np.asarray(trials.task[b])) ** 2)  # MSE over the target's dims
    # The reference's reductions (VariBAD compute_loss): reconstruction averaged over the
    # trials of the batch, KL and task terms summed over them.
    n = len(lengths)
    np.testing.assert_allclose(stats["kl"], kl, rtol=1e-4)
    np.testing.assert_allclose(stats["reward_reconstruction"], rec / n, rtol=1e-4)
    np.testing.assert_allclose(stats["task_inference_loss"], task, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(stats["elbo_loss"], kl + rec / n + task, rtol=1e-4)
    # "mean" averages every term over trials instead.
    mean_cfg = dataclasses.replace(cfg, loss_reduction="mean")
    _, mean_stats = inference.elbo_loss(params, agent, norms, trials, key, mean_cfg)
    np.testing.assert_allclose(mean_stats["elbo_loss"], (kl + rec + task) / n, rtol=1e-4)

    # Padding is ignored: garbage beyond each trial's length changes nothing.
    garbage = trials.replace(obs=trials.obs.at[1, 3:].set(9.0), cell=trials.cell.at[1, 4:].set(24),
                             cell_hit=trials.cell_hit.at[1, 3:].set(True))
    _, stats2 = inference.elbo_loss(params, agent, norms, garbage, key, cfg)
    np.testing.assert_allclose(stats2["elbo_loss"], stats["elbo_loss"], rtol=1e-6)


def test_elbo_subsampling_uses_a_subset_of_terms():
    learner, state = learner_and_state("vi")
    trials = hand_made_trials(learner).replace(length=jnp.asarray([6, 6], jnp.int32))
    cfg = learner.cfg.inference
    full = inference.elbo_loss(state.params, learner.agent, state.norms, trials, jax.random.PRNGKey(0), cfg)[1]
    sub = inference.elbo_loss(state.params, learner.agent, state.norms, trials, jax.random.PRNGKey(0),
                              dataclasses.replace(cfg, elbo_subsample=2))[1]
    # 2 ELBO terms x 2 decode steps instead of 6 x 6: a much smaller reconstruction sum.
    assert 0 < float(sub["reward_reconstruction"]) < 0.5 * float(full["reward_reconstruction"])


def test_elbo_subsampling_draws_within_each_trials_length():
    """Sub-sampled ELBO terms and decode steps come from each trial's real steps, never
    from the padding (MC-LS and early-terminating MuJoCo trials are shorter than the pad)."""
    lengths = jnp.asarray([3, 60, 0], jnp.int32)
    steps, valid = inference.elbo_steps(jax.random.PRNGKey(0), lengths, 60, 50)
    steps, valid = np.asarray(steps), np.asarray(valid)
    assert steps.shape == (3, 50)
    assert steps[0].max() < 3 and set(steps[0]) == {0, 1, 2} and valid[0].all()
    assert steps[1].max() > 40 and valid[1].all()
    assert not valid[2].any()  # an empty trial contributes nothing


def test_subsampled_kl_covers_the_drawn_elbo_terms_summed_over_trials():
    learner, state = learner_and_state("vi")
    trials = hand_made_trials(learner)
    cfg = dataclasses.replace(learner.cfg.inference, elbo_subsample=4)
    key = jax.random.PRNGKey(7)
    stats = inference.elbo_loss(state.params, learner.agent, state.norms, trials, key, cfg)[1]
    ld = MODEL.latent_dim
    latents = inference.encode_trials(learner.agent, state.params, trials)
    mu, logvar = latents[..., :ld], latents[..., ld:]
    prior = lambda x: jnp.concatenate([jnp.zeros_like(x[:, :1]), x[:, :-1]], axis=1)  # noqa: E731
    kl_steps = np.asarray(inference.gaussian_kl(mu, logvar, prior(mu), prior(logvar)))
    ts, valid = inference.elbo_steps(jax.random.split(key, 3)[1], trials.length, trials.reward.shape[1], 4)
    expected = sum(kl_steps[b, int(t)] for b in range(2) for t, v in zip(np.asarray(ts[b]), np.asarray(valid[b]), strict=True) if v)
    # The reference's `kl_divergences[elbo_indices]` sums S x B time rows over all B trials:
    # B times the per-trial sum in expectation, the scale its kl_weight was tuned with.
    assert cfg.kl_scale == "reference"
    np.testing.assert_allclose(stats["kl"], 2 * expected, rtol=1e-5)
    per_trial = inference.elbo_loss(state.params, learner.agent, state.norms, trials, key,
                                    dataclasses.replace(cfg, kl_scale="trial"))[1]
    np.testing.assert_allclose(per_trial["kl"], expected, rtol=1e-5)
    # Without sub-sampling both are the per-trial sum over every step (the reference's too).
    full = [inference.elbo_loss(state.params, learner.agent, state.norms, trials, key,
                                dataclasses.replace(cfg, elbo_subsample=0, kl_scale=scale))[1]["kl"]
            for scale in ("reference", "trial")]
    np.testing.assert_allclose(full[0], full[1], rtol=1e-6)
    np.testing.assert_allclose(full[0], (kl_steps * np.asarray(trials.mask())).sum(), rtol=1e-5)


def test_elbo_averages_over_the_batchs_real_trials():
    """While the buffer holds fewer trials than a batch, the batch is smaller (the
    reference's `get_batch`: min(buffer, batch) distinct trials): empty rows change no term."""
    learner, state = learner_and_state("ti-pp")
    trials = hand_made_trials(learner)
    padded = jax.tree.map(lambda x: jnp.concatenate([x, jnp.zeros_like(x[:1])]), trials)  # a third, empty row
    cfg = learner.cfg.inference
    key = jax.random.PRNGKey(3)
    two = inference.elbo_loss(state.params, learner.agent, state.norms, trials, key, cfg)[1]
    three = inference.elbo_loss(state.params, learner.agent, state.norms, padded, key, cfg)[1]
    for name in ("reward_reconstruction", "kl", "task_inference_loss"):
        assert float(two[name]) > 0, name
        np.testing.assert_allclose(three[name], two[name], rtol=1e-5, err_msg=name)


# --------------------------------------------------------------------------- the trial buffer


def test_trial_buffer_files_finished_trials_across_rollouts():
    buf = TrialBuffer.create(capacity=4, num_envs=2, length=5, obs_dim=1, action_dim=1, next_obs_dim=1, task_dim=1)
    # env 0: trials of 3 steps; env 1: one trial of 5 steps. Two rollouts of 4 steps.
    done = np.zeros((8, 2), bool)
    done[[2, 5], 0] = True
    done[4, 1] = True
    steps = np.arange(8, dtype=np.float32)[:, None] * np.ones((1, 2)) + np.array([0, 100])
    def add(buf, sl):
        t = steps[sl]
        return buf.add(jnp.asarray(t[..., None]), jnp.asarray(t[..., None]), jnp.asarray(t), jnp.asarray(t[..., None]),
                       jnp.zeros(t.shape, jnp.int32), jnp.zeros(t.shape, bool), jnp.asarray(t[..., None]),
                       jnp.asarray(done[sl]))
    buf = add(add(buf, slice(0, 4)), slice(4, 8))
    assert int(buf.size) == 3 and int(buf.head) == 3
    lengths = np.asarray(buf.trials.length[:3]).tolist()
    assert lengths == [3, 5, 3]  # filed in the order they ended
    np.testing.assert_array_equal(buf.trials.reward[0, :3], [0, 1, 2])
    np.testing.assert_array_equal(buf.trials.reward[1, :5], [100, 101, 102, 103, 104])
    np.testing.assert_array_equal(buf.trials.reward[2, :3], [3, 4, 5])
    assert np.asarray(buf.running.length).tolist() == [2, 3]  # 6, 7 and 105, 106, 107 are running


def test_trial_buffer_batches_are_distinct_trials_and_shrink_while_the_buffer_is_small():
    """The reference's `get_batch` draws min(buffer, batch) trials without replacement."""
    buf = TrialBuffer.create(capacity=40, num_envs=6, length=2, obs_dim=1, action_dim=1, next_obs_dim=1, task_dim=1)
    ones = jnp.ones((2, 6))
    for _ in range(3):  # 3 x 6 trials of 2 steps, each tagged by its first reward
        tag = jnp.asarray(np.arange(6) + 10.0 * int(buf.size), jnp.float32)
        buf = buf.add(jnp.zeros((2, 6, 1)), jnp.zeros((2, 6, 1)), ones * tag, jnp.zeros((2, 6, 1)),
                      jnp.zeros((2, 6), jnp.int32), jnp.zeros((2, 6), bool), jnp.zeros((2, 6, 1)),
                      jnp.asarray([[False] * 6, [True] * 6]))
    assert int(buf.size) == 18
    seen = set()
    for i in range(30):
        batch = buf.sample(jax.random.PRNGKey(i), 10)
        tags = np.asarray(batch.reward[:, 0]).tolist()
        assert len(set(tags)) == 10 and (np.asarray(batch.length) == 2).all()  # 10 distinct stored trials
        seen |= set(tags)
    assert len(seen) == 18  # every stored trial is drawn
    small = buf.sample(jax.random.PRNGKey(0), 25)  # more than stored: all 18, once each
    lengths = np.asarray(small.length)
    assert (lengths == 2).sum() == 18 and (lengths == 0).sum() == 7
    assert sorted(np.asarray(small.reward[lengths == 2, 0]).tolist()) == sorted(seen)


# --------------------------------------------------------------------------- stop-gradients


def ppo_grads(method: str, perturb: bool = False):
    learner, state = learner_and_state(method)
    if perturb:  # Bias-HyperInit's zero heads make the policy ignore the latent at initialisation
        state = state.replace(params=jax.tree.map(lambda p: p + 0.05 * jnp.sin(jnp.arange(p.size).reshape(p.shape)),
                                                  state.params))
    _, rollout = jax.jit(lambda s, k: learner.collector.collect(learner.agent, s.params, s.norms, s.carry,
                                                                jax.random.split(k, 30)))(state, jax.random.PRNGKey(1))
    adv = jnp.asarray(np.random.default_rng(0).normal(size=rollout.value.shape), jnp.float32)
    every = jnp.arange(rollout.reward.size)
    # The learner's PPO loss: with the method's auxiliary loss where it has one.
    return jax.grad(lambda p: ppo.ppo_loss(p, learner.agent, state.norms, rollout, every, adv, rollout.value + 1.0,
                                           learner.cfg.ppo, False, learner.method.encoder.extra_loss(learner.agent, learner.cfg.inference.aux_weight))[0])(state.params)


def grad_norm(tree) -> float:
    return float(sum(jnp.sum(x**2) for x in jax.tree.leaves(tree)) ** 0.5)


@pytest.mark.parametrize("method", ["vi", "ti-pp-hn", "bi-pp-hn"])
def test_ppo_loss_does_not_reach_a_variational_encoder(method):
    grads = ppo_grads(method, perturb=True)
    assert grad_norm(group(grads, "encoder")) == 0.0
    assert grad_norm(group(grads, "decoder")) == 0.0
    assert grad_norm(layers(grads, "policy", ("actor", "critic"))) > 0


def test_policy_reads_a_variational_latent_without_its_gradient():
    """The ELBO's latent reaches the policy stop-gradiented (whatever latents PPO feeds it:
    stored or replayed); only the latent-gradient analysis asks for the gradient. (VI: with
    Bias-HyperInit a fresh +HN policy does not depend on its latent at all.)"""
    learner, state = learner_and_state("vi")
    key_obs, key_latent = jax.random.split(jax.random.PRNGKey(3))
    obs = jax.random.normal(key_obs, (5, learner.wrapper.observation_space.shape[0]))
    latent = jax.random.normal(key_latent, (5, 2 * MODEL.latent_dim))
    task = jnp.zeros((5, learner.wrapper.task_dim))

    def value_sum(latent, analysis: bool):
        _, value = conditioning.policy(learner.agent, state.params, state.norms, obs, latent, task, False,
                                       latent_gradient=analysis)
        return value.sum()

    assert float(jnp.abs(jax.grad(value_sum)(latent, False)).max()) == 0.0
    assert float(jnp.abs(jax.grad(value_sum)(latent, True)).max()) > 0.0


def test_ppo_loss_trains_an_end_to_end_encoder():
    assert grad_norm(group(ppo_grads("rnn-hn", perturb=True), "encoder")) > 0
    # The end-to-end + TI auxiliary loss reaches the encoder but not the task embedding g.
    grads = ppo_grads("rnn-hn-ti")
    assert grad_norm(group(grads, "encoder")) > 0
    assert grad_norm(group(grads, "task_embed")) == 0.0


@pytest.mark.parametrize("method", ["ti", "bi-pp-hn"])
def test_task_inference_target_gets_no_gradient(method):
    learner, state = learner_and_state(method)
    trials = hand_made_trials(learner)
    grads = jax.grad(lambda p: inference.elbo_loss(p, learner.agent, state.norms, trials, jax.random.PRNGKey(0),
                                                   learner.cfg.inference)[0])(state.params)
    assert grad_norm(group(grads, "task_embed", "policy")) == 0.0
    assert grad_norm(group(grads, "encoder")) > 0 and grad_norm(layers(grads, "decoder", ("dec_task",))) > 0


# --------------------------------------------------------------------------- the BI target


def test_bi_target_is_the_multi_task_hypernetworks_base_network():
    learner, state = learner_and_state("bi-pp-hn")
    agent = learner.agent
    params = jax.tree.map(lambda p: p + 0.05 * jnp.sin(jnp.arange(p.size).reshape(p.shape)), state.params)  # heads active
    task = jnp.asarray([[3.0, 1.0], [0.0, 4.0]])
    target = agent.method.task_target.value(agent, params, state.norms, task)
    assert target.shape == (2, agent.base_net_size)
    # Run the base networks as plain MLPs with the unpacked target as their weights: the same
    # outputs as the hypernetwork policy conditioned on g(c).
    g = conditioning.task_embedding(agent, params, state.norms, task)
    obs = jnp.asarray([[1.0, 2.0, 0.0], [4.0, 0.0, 1.0]])
    dist, value = agent.policy(params, state.norms.obs.normalize(obs), g)
    x0 = jnp.tanh(agent.policy_net.apply({"params": params["policy"]}, state.norms.obs.normalize(obs),
                                         method=lambda m, o: m.state_embed(o)))
    outputs, offset = {}, 0
    for net, widths in (("critic", [16, 8, 1]), ("actor", [16, 8, 5])):
        x, fan_in = x0, 16
        for i, w in enumerate(widths):
            weight = target[:, offset: offset + fan_in * w].reshape(2, fan_in, w)
            offset += fan_in * w
            bias = target[:, offset: offset + w]
            offset += w
            x = jnp.einsum("bi,bio->bo", x, weight) + bias
            if i < len(widths) - 1:
                x = jnp.tanh(x)
            fan_in = w
        outputs[net] = x
    assert offset == agent.base_net_size
    np.testing.assert_allclose(outputs["critic"][:, 0], value, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(outputs["actor"], dist.logits, rtol=1e-4, atol=1e-5)
    # The Gram form of the distance between two generated base networks is exact.
    gram = agent.base_net_gram(params)
    d = g[0] - g[1]
    np.testing.assert_allclose(d @ gram @ d, jnp.sum((target[0] - target[1]) ** 2), rtol=1e-3)


def test_task_decoder_squared_error_equals_the_explicit_one():
    learner, state = learner_and_state("bi-pp-hn")
    params = jax.tree.map(lambda p: p + 0.01, state.params)
    z = jnp.asarray(np.random.default_rng(1).normal(size=(2, 3, MODEL.latent_dim)), jnp.float32)
    target = jnp.asarray(np.random.default_rng(2).normal(size=(2, 1, learner.agent.base_net_size)), jnp.float32)
    fast = learner.agent.decoder(params, Decoders.task_error, z, target)
    pred = raw_task_prediction(learner.agent, params, z)
    np.testing.assert_allclose(fast, jnp.sum((pred - target) ** 2, axis=-1), rtol=1e-3)


# --------------------------------------------------------------------------- pre-training


def run_updates(method: str, n: int):
    learner, state = learner_and_state(method)
    update = jitted_update(method)
    states = [state]
    for _ in range(n):
        state, stats = update(state)
        states.append(state)
    return learner, states, stats


def column_norms(params, layer: str) -> np.ndarray:
    return np.linalg.norm(np.asarray(params["policy"][layer]["kernel"]), axis=0)


def test_pretraining_without_pp_reinitialises_the_policy_and_freezes_inference():
    learner, states, _ = run_updates("ti", 4)  # pretrain_updates = 2; 30-step rollouts, 60-step trials
    before, at_reset, after = states[1], states[2], states[4]
    assert bool(learner.pretraining(before)) and not bool(learner.pretraining(at_reset))
    # Trained during pre-training, then freshly initialised: normc columns have norm 5/3 again.
    assert not np.allclose(column_norms(before.params, "actor_0"), TANH_GAIN, atol=1e-4)
    np.testing.assert_allclose(column_norms(at_reset.params, "actor_0"), TANH_GAIN, rtol=1e-5)
    actor_critic = ("actor", "critic")
    assert not tree_allclose(layers(at_reset.params, "policy", actor_critic),
                             layers(states[0].params, "policy", actor_critic))
    # g keeps what pre-training taught it (and PPO no longer moves it); the encoder and
    # decoders were frozen through pre-training.
    assert not tree_allclose(group(at_reset.params, "task_embed"), group(states[0].params, "task_embed"))
    assert tree_allclose(group(after.params, "task_embed"), group(at_reset.params, "task_embed"))
    assert tree_allclose(group(at_reset.params, "encoder", "decoder"), group(states[0].params, "encoder", "decoder"))
    # Pre-training trials are filed as the reference's (every step goes into the VAE's
    # buffer): 2 updates x 30 steps end one 60-step trial in each of the 4 environments.
    assert int(at_reset.trials.size) == 4
    # After pre-training, inference learns once the first trial collected after it ends.
    assert not tree_allclose(group(after.params, "encoder"), group(at_reset.params, "encoder"))


def test_pretraining_with_pp_keeps_the_policy_and_trains_inference_throughout():
    learner, states, _ = run_updates("ti-pp", 3)
    at_switch = states[2]
    assert not np.allclose(column_norms(at_switch.params, "actor_0"), TANH_GAIN, atol=1e-4)
    # Inference was trained on pre-training trajectories (30-step rollouts end 60-step trials).
    assert not tree_allclose(group(at_switch.params, "encoder"), group(states[0].params, "encoder"))
    assert int(at_switch.trials.size) > 0


def test_pretraining_conditions_the_rollouts_on_the_task():
    """During pre-training the collected log-probs are those of the task-conditioned policy."""
    learner, state = learner_and_state("ti-pp-hn")
    params = jax.tree.map(lambda p: p + 0.2 * jnp.cos(jnp.arange(p.size).reshape(p.shape)), state.params)
    state = state.replace(params=params)
    roll = lambda use_task: learner.collector.collect(learner.agent, state.params, state.norms,  # noqa: E731
                                                      state.carry, jax.random.split(jax.random.PRNGKey(0), 5),
                                                      use_task)[1]
    with_task, with_latent = roll(True), roll(False)
    dist, _ = conditioning.policy(learner.agent, params, state.norms, with_task.obs[0], with_task.latent[0],
                                  with_task.task[0], True)
    np.testing.assert_allclose(dist.log_prob(with_task.action[0]), with_task.log_prob[0], rtol=1e-5)
    assert not np.allclose(with_task.log_prob[0], with_latent.log_prob[0])


def test_pretraining_consumes_exactly_n_updates_of_the_budget(tmp_path):
    from hypermeta.training.loop import train

    cfg = dataclasses.replace(small_cfg("ti-pp-hn", pretrain_updates=3), eval_interval=2)
    run = train(cfg, tmp_path / "run", show_progress=False)
    rows = run.read_metrics()
    per_update = PPO.frames_per_update
    assert [int(r["update"]) for r in rows] == [2, 4, 6]  # the total budget is unchanged
    assert [int(r["pretrain_frames"]) for r in rows] == [2 * per_update, 3 * per_update, 3 * per_update]
    rnn = train(dataclasses.replace(cfg, method="rnn-hn"), tmp_path / "rnn", show_progress=False)
    assert {int(r["pretrain_frames"]) for r in rnn.read_metrics()} == {0}


# --------------------------------------------------------------------------- every method on every grid-world


INFERENCE_METHODS = [m for m in METHODS if not METHODS[m].encoder.trained_by_ppo or METHODS[m].task_target.decoded]
#: The grid-worlds differ only in observations and rewards, which reach the methods through the
#: environment, the encoder and the per-cell reward decoder; BI++HN exercises all of those (and the
#: hypernetwork, pre-training and the largest target). Every method on every grid-world would be
#: 48 compilations (~8 CI minutes) for no further branch.
ALL_PATHS = ["bi-pp-hn"]
CASES = [(m, "grid-world") for m in INFERENCE_METHODS] + [
    (m, env) for env in sorted(ENVIRONMENTS) if env.startswith("grid-world-") for m in ALL_PATHS
]  # MC-LS: tests/test_mc_ls.py (its trials are 400 steps long)


@pytest.mark.parametrize("method, env", CASES)
def test_every_method_trains_on_the_grid_worlds_without_nan(method, env):
    learner, state = learner_and_state(method, env)
    update = jitted_update(method, env)
    for _ in range(4):  # crosses the end of pre-training (2 updates) and files a trial after it
        state, stats = update(state)
    for name, value in stats.items():
        assert np.all(np.isfinite(np.asarray(value))), f"{method} on {env}: {name} = {value}"
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(state.params))
    if METHODS[method].variational:
        assert float(stats["elbo_loss"]) > 0
    returns = jax.jit(learner.evaluate)(state.params, state.norms, jax.random.PRNGKey(0))
    assert np.all(np.isfinite(np.asarray(returns)))


def test_paper_spellings_resolve():
    for spelling, name in [("TI++HN", "ti-pp-hn"), ("BI++HN", "bi-pp-hn"), ("TI Naive", "ti-naive"), ("VI+HN", "vi-hn"),
                           ("Multi+HN", "multi-hn"), ("VariBAD", "vi"), ("TI+HN", "ti-hn"), ("RNN+HN+TI", "rnn-hn-ti")]:
        assert get_method(spelling).name == name


def test_walker_state_decoder_reconstructs_the_done_bit():
    """The reference's Walker state decoder predicts the 18 values of its VAE states
    (17 observations + the done bit), from states that carry the bit too."""
    learner = Learner(TrainConfig(env="walker-params", method="vi", model=MODEL, ppo=PPO,
                                  inference=dataclasses.replace(INFERENCE, decode_reward=False, decode_state=True)))
    state = jax.jit(learner.init)(jnp.int32(0), jnp.float32(1e-3))
    kernel = state.params["decoder"]["dec_state"]
    out = [leaf.shape[-1] for path, leaf in jax.tree_util.tree_leaves_with_path(kernel)
           if "bias" in jax.tree_util.keystr(path)][-1]
    assert out == 18 == learner.wrapper.observation_space.shape[0]
    assert state.trials.trials.next_obs.shape[-1] == 18


@pytest.mark.parametrize("method", ["rnn-hn-ti", "rnn-hn-bi"])
def test_aux_loss_is_a_mean_over_items_and_dimensions(method):
    """The reference's `add_ti_loss`: ((target - conditioning)^2).mean() over items and
    dimensions (25 for g(c); every generated base-network weight for BI)."""
    learner, state = learner_and_state(method)
    agent = learner.agent
    params = jax.tree.map(lambda p: p + 0.05 * jnp.sin(jnp.arange(p.size).reshape(p.shape)), state.params)
    task = jnp.asarray([[3.0, 1.0], [0.0, 4.0], [2.0, 2.0]])
    e = jnp.tanh(jnp.asarray(np.random.default_rng(0).normal(size=(3, MODEL.policy_latent_embed)), jnp.float32))
    g = conditioning.task_embedding(agent, params, state.norms, task)
    if method == "rnn-hn-bi":
        mine = jax.vmap(lambda x: agent.base_net(params, x))
        expected = np.mean((np.asarray(mine(e)) - np.asarray(mine(g))) ** 2)
    else:
        expected = np.mean((np.asarray(e) - np.asarray(g)) ** 2)
    np.testing.assert_allclose(agent.method.task_target.distance(agent, params, state.norms, e, task), expected, rtol=2e-3)
