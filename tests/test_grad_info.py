"""The latent-gradient analysis (paper section 5, Figure 11; `--grad-info`)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hypermeta.config import GRUConfig, ModelConfig, PPOConfig, TrainConfig
from hypermeta.training import ppo
from hypermeta.training.conditioning import Normalizers
from hypermeta.training.learner import Learner
from hypermeta.training.normalize import RunningMeanStd

MODEL = ModelConfig(gru=GRUConfig(16), policy_state_embed=8, policy_latent_embed=8, policy_hidden=(16, 8))
CFG = TrainConfig(env="grid-world", model=MODEL, ppo=PPOConfig(num_envs=4, num_steps=15, minibatches=1, epochs=1))


def setup(method: str):
    """A learner, its initial state, a non-trivial normaliser and one rollout."""
    learner = Learner(dataclasses.replace(CFG, method=method))
    state = jax.jit(learner.init)(jnp.asarray(0), jnp.asarray(1e-3, jnp.float32))
    rng = np.random.default_rng(0)
    obs_rms = Normalizers.create(3, 10, 2).replace(
        obs=RunningMeanStd.create((3,)).update(jnp.asarray(rng.uniform(0, 4, size=(50, 3)), jnp.float32)))
    collect = jax.jit(lambda p, c, k: learner.collector.collect(learner.agent, p, obs_rms, c, jax.random.split(k, 15)))
    _, rollout = collect(state.params, state.carry, jax.random.PRNGKey(1))
    return learner, state, obs_rms, rollout


def everything(rollout, latents):
    """One minibatch holding every transition of the rollout."""
    return ppo.gather(rollout, latents, rollout.value, rollout.value, jnp.arange(rollout.reward.size))


def per_item_reference(agent, params, obs_rms, obs, latents, normalize_latent=False):
    """Norms of d value[t, b] / d (latent[t, b], obs[t, b]) item by item, then averaged."""
    def value(latent, raw_obs):
        latent = obs_rms.latent.normalize(latent) if normalize_latent else latent
        _, v = agent.policy(params, obs_rms.obs.normalize(raw_obs[None]), agent.embed_latent(params, latent[None]))
        return v[0]

    grad = jax.jit(jax.grad(value, argnums=(0, 1)))
    g_lat, g_obs = [], []
    for t in range(obs.shape[0]):
        for b in range(obs.shape[1]):
            gl, go = grad(latents[t, b], obs[t, b])
            g_lat.append(np.linalg.norm(gl))
            g_obs.append(np.linalg.norm(go))
    return float(np.mean(g_lat)), float(np.mean(g_obs))


@pytest.mark.parametrize("method", ["rnn", "rnn-s", "rnn-hn-kaiming"])
def test_grad_info_matches_per_item_gradients(method):
    learner, state, obs_rms, rollout = setup(method)
    latents = ppo.replay_latents(learner.agent, state.params, rollout)
    info = jax.jit(lambda p: ppo.latent_grad_info(learner.agent, p, obs_rms, everything(rollout, latents)))(state.params)
    ref_latent, ref_state = per_item_reference(learner.agent, state.params, obs_rms, rollout.obs, latents)
    np.testing.assert_allclose(info["latent_grad_norm"], ref_latent, rtol=1e-4)
    np.testing.assert_allclose(info["state_grad_norm"], ref_state, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(info["latent_norm"], np.linalg.norm(latents, axis=-1).mean(), rtol=1e-5)
    np.testing.assert_allclose(info["state_norm"], np.linalg.norm(rollout.obs, axis=-1).mean(), rtol=1e-5)
    assert float(info["latent_grad_norm"]) > 0
    if method == "rnn":  # its policy sees the state only through the latent
        assert float(info["state_grad_norm"]) == 0.0
    else:
        assert float(info["state_grad_norm"]) > 0


def test_bias_hyperinit_starts_with_zero_latent_gradient():
    """Bias-HyperInit makes the output independent of the latent at initialisation,
    which the analysis must show as a zero latent gradient (the paper's point)."""
    learner, state, obs_rms, rollout = setup("rnn-hn")
    latents = ppo.replay_latents(learner.agent, state.params, rollout)
    info = ppo.latent_grad_info(learner.agent, state.params, obs_rms, everything(rollout, latents))
    assert float(info["latent_grad_norm"]) < 1e-6
    assert float(info["state_grad_norm"]) > 0


def test_update_logs_grad_info_at_pre_step_params_without_changing_training():
    learner, state, obs_rms, rollout = setup("rnn-s")
    rewards = rollout.reward

    def run(grad_info):
        return jax.jit(lambda p, o: ppo.update(learner.agent, learner.tx, learner.cfg.ppo, p, o, obs_rms, rollout,
                                               rewards, jnp.float32(1e-3), jax.random.PRNGKey(2), grad_info=grad_info)
                       )(state.params, state.opt_state)

    params_on, _, stats_on = run(True)
    params_off, _, stats_off = run(False)
    assert "latent_grad_norm" not in stats_off
    # Logging does not change the update. The two are different XLA programs, which may round
    # differently in the last bit (seen: 4e-9 at the tests' optimisation level 0): equal to
    # float32 rounding, far below what one update moves a parameter (lr 1e-3).
    for a, b in zip(jax.tree.leaves(params_on), jax.tree.leaves(params_off), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-8)
    # one epoch, one minibatch (all envs): the logged values are those of the initial params
    latents = ppo.replay_latents(learner.agent, state.params, rollout)
    direct = ppo.latent_grad_info(learner.agent, state.params, obs_rms, everything(rollout, latents))
    for name, value in direct.items():
        np.testing.assert_allclose(stats_on[name], value, rtol=1e-4, err_msg=name)


def test_grad_info_goes_through_the_latent_normaliser_of_variational_methods():
    """VariBAD-type policies read the normalised latent: the analysis differentiates through
    that normalisation (and through no stop-gradient), as acting computes the value."""
    learner, state, obs_rms, rollout = setup("vi")
    rng = np.random.default_rng(1)
    obs_rms = obs_rms.replace(latent=RunningMeanStd.create((10,)).update(
        jnp.asarray(rng.normal(2.0, 4.0, size=(200, 10)), jnp.float32)))
    latents = rollout.latent
    info = ppo.latent_grad_info(learner.agent, state.params, obs_rms, everything(rollout, latents))
    ref_latent, ref_state = per_item_reference(learner.agent, state.params, obs_rms, rollout.obs, latents,
                                               normalize_latent=True)
    np.testing.assert_allclose(info["latent_grad_norm"], ref_latent, rtol=1e-4)
    np.testing.assert_allclose(info["state_grad_norm"], ref_state, rtol=1e-4)
    raw_latent, _ = per_item_reference(learner.agent, state.params, obs_rms, rollout.obs, latents)
    assert abs(ref_latent - raw_latent) > 0.1 * ref_latent  # the normaliser matters on this data


def test_grad_info_during_pretraining_reads_the_task_embedding():
    """While a TI method pre-trains, the policy reads g(c_M): the latent has no influence."""
    learner, state, obs_rms, rollout = setup("ti-pp")
    mb = everything(rollout, rollout.latent)
    pre = ppo.latent_grad_info(learner.agent, state.params, obs_rms, mb, use_task=True)
    after = ppo.latent_grad_info(learner.agent, state.params, obs_rms, mb, use_task=False)
    assert float(pre["latent_grad_norm"]) == 0.0
    assert float(after["latent_grad_norm"]) > 0
    assert float(pre["state_grad_norm"]) > 0
