"""Task inference: the VariBAD ELBO, its optimiser, and the end-to-end auxiliary loss.

ELBO on a batch of stored trials (original-implementation.md 2.3, paper section 3.3):
the encoder is replayed from the zero state over each whole trial; step t's output is
a diagonal Gaussian q_t = N(mu_t, sigma_t^2) (the two halves of the linear head, the
second read as log sigma^2). Each ELBO term t draws z_t ~ q_t and decodes the *whole*
trial, past and future:

    loss = sum_t sum_j rec(z_t, step j) + sum_t ||dec_task(z_t) - target||^2
           + kl_weight * sum_t KL(q_t || q_{t-1}),     q_{-1} = N(0, I)

summed over valid steps and averaged over trials. (The reference averages the
reconstruction over trials but sums the KL and task terms over them, which weights
those 25x more on Grid; we average all of them, original-implementation.md 7.6.)
Targets: the raw task c_M (TI Naive), g(c_M) (TI), or the base network the
hypernetwork generates for g(c_M) (BI), always without gradient.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from hypermeta.config import InferenceConfig
from hypermeta.envs.base import Array, PRNGKey
from hypermeta.networks.agent import Agent
from hypermeta.training import conditioning
from hypermeta.training.conditioning import Normalizers
from hypermeta.training.trial_buffer import TrialBuffer, Trials

ELBO_STATS = ("elbo_loss", "kl", "reward_reconstruction", "state_reconstruction", "task_inference_loss")


def gaussian_kl(mu: Array, logvar: Array, prior_mu: Array, prior_logvar: Array) -> Array:
    """KL(N(mu, e^logvar) || N(prior_mu, e^prior_logvar)) of diagonal Gaussians, summed over the last axis."""
    return 0.5 * jnp.sum(
        prior_logvar - logvar + (jnp.exp(logvar) + (mu - prior_mu) ** 2) / jnp.exp(prior_logvar) - 1.0, axis=-1
    )


def encode_trials(agent: Agent, params, trials: Trials) -> Array:
    """The encoder's outputs (N, L, 2 * latent_dim) over whole stored trials, from the zero state."""
    n = trials.length.shape[0]

    def step(h, inputs):
        prev_action, prev_reward, obs, reset = inputs
        return agent.apply(params, h, prev_action, prev_reward, obs, reset, method=Agent.encode)

    _, latents = jax.lax.scan(step, agent.initial_hidden((n,)), trials.encoder_inputs())
    return jnp.swapaxes(latents, 0, 1)


def running_hidden(agent: Agent, params, running: Trials) -> Array:
    """Encoder state after each unfinished trial's stored steps (re-encoded with `params`)."""
    n = running.length.shape[0]

    def step(h, inputs):
        t, prev_action, prev_reward, obs, reset = inputs
        h_new, _ = agent.apply(params, h, prev_action, prev_reward, obs, reset, method=Agent.encode)
        return jnp.where((t < running.length)[:, None], h_new, h), None

    steps = jnp.arange(running.reward.shape[1])
    h, _ = jax.lax.scan(step, agent.initial_hidden((n,)), (steps, *running.encoder_inputs()))
    return h


def task_target(agent: Agent, params, norms: Normalizers, task: Array) -> Array:
    """What task inference reconstructs for raw task vectors (no gradient)."""
    target = agent.method.task_target
    if target == "task":
        return task
    g = conditioning.task_embedding(agent, params, norms, task)
    if target == "base-net":
        g = agent.apply(params, g, method=Agent.base_net)
    return jax.lax.stop_gradient(g)


def _subsample(key: PRNGKey, length: int, n: int) -> Array:
    if n <= 0 or n >= length:
        return jnp.arange(length)
    return jnp.sort(jax.random.choice(key, length, (n,), replace=False))


def elbo_loss(params, agent: Agent, norms: Normalizers, trials: Trials, key: PRNGKey,
              cfg: InferenceConfig) -> tuple[Array, dict[str, Array]]:
    """Negative ELBO (plus task inference) of a batch of trials; see the module docstring."""
    m, ld = agent.method, agent.model.latent_dim
    n, length = trials.reward.shape
    latents = encode_trials(agent, params, trials)
    mu, logvar = latents[..., :ld], latents[..., ld:]
    mask = trials.mask().astype(jnp.float32)
    prior_mu = jnp.concatenate([jnp.zeros_like(mu[:, :1]), mu[:, :-1]], axis=1)
    prior_logvar = jnp.concatenate([jnp.zeros_like(logvar[:, :1]), logvar[:, :-1]], axis=1)
    kl = jnp.sum(gaussian_kl(mu, logvar, prior_mu, prior_logvar) * mask) / n

    noise_key, t_key, j_key = jax.random.split(key, 3)
    z = mu + jnp.exp(0.5 * logvar) * jax.random.normal(noise_key, mu.shape)
    ts, js = _subsample(t_key, length, cfg.elbo_subsample), _subsample(j_key, length, cfg.elbo_subsample)
    z_t, mask_t = z[:, ts], mask[:, ts]
    pair_mask = mask_t[:, :, None] * mask[:, js][:, None, :]  # (N, Lt, Lj): ELBO term t decodes step j

    def pairs(x: Array) -> Array:
        """Per-step data (N, L, ...) at the decode steps, broadcast over the ELBO terms."""
        x = x[:, js]
        return jnp.broadcast_to(x[:, None], (n, ts.shape[0], *x.shape[1:]))

    z_pairs = jnp.broadcast_to(z_t[:, :, None], (n, ts.shape[0], js.shape[0], ld))
    raw_dim = trials.next_obs.shape[-1]
    obs_raw = trials.obs[..., :raw_dim]
    reward_rec = state_rec = task_loss = jnp.zeros(())
    if agent.inference.decode_reward:
        if agent.num_cells:
            logits = agent.apply(params, z_t, method=lambda a, z: a.dec_reward(z))  # (N, Lt, cells)
            cell = jnp.broadcast_to(trials.cell[:, js][:, None, :], pair_mask.shape)
            picked = jnp.take_along_axis(logits, cell, axis=-1)
            hit = pairs(trials.cell_hit).astype(jnp.float32)
            err = optax.sigmoid_binary_cross_entropy(picked, hit)
        else:
            pred = agent.apply(params, z_pairs, pairs(obs_raw), pairs(trials.action), pairs(trials.next_obs),
                               method=lambda a, *x: a.dec_reward(*x))
            err = (pred - pairs(trials.reward)) ** 2
        reward_rec = jnp.sum(err * pair_mask) / n
    if agent.inference.decode_state:
        pred = agent.apply(params, z_pairs, pairs(obs_raw), pairs(trials.action), method=lambda a, *x: a.dec_state(*x))
        state_rec = jnp.sum(jnp.sum((pred - pairs(trials.next_obs)) ** 2, axis=-1) * pair_mask) / n
    if m.task_target != "none":
        target = task_target(agent, params, norms, trials.task)[:, None]
        err = agent.apply(params, z_t, target, method=lambda a, z, y: a.dec_task.squared_error(z, y))
        task_loss = jnp.sum(err * mask_t) / n
    loss = reward_rec + state_rec + task_loss + cfg.kl_weight * kl
    stats = dict(zip(ELBO_STATS, (loss, kl, reward_rec, state_rec, task_loss)))
    return loss, stats


def _inference_labels(params) -> Any:
    return {"params": {
        name: jax.tree.map(lambda _: "train" if name.startswith(("enc_", "gru", "dec_")) else "freeze", sub)
        for name, sub in params["params"].items()
    }}


def make_vae_optimizer(cfg: InferenceConfig) -> optax.GradientTransformation:
    """Adam (lr_vae) on the encoder and the decoders only; the policy is PPO's."""
    return optax.multi_transform({"train": optax.adam(cfg.lr), "freeze": optax.set_to_zero()}, _inference_labels)


def vae_update(agent: Agent, tx: optax.GradientTransformation, cfg: InferenceConfig, params, opt_state,
               norms: Normalizers, buffer: TrialBuffer, key: PRNGKey, enabled: Array | bool = True):
    """`cfg.updates` ELBO steps on batches from the buffer; nothing moves while it is empty or not `enabled`."""
    grad_fn = jax.grad(elbo_loss, has_aux=True)
    active = jnp.logical_and(enabled, buffer.size > 0)

    def one(carry, key):
        params, opt_state = carry
        sample_key, loss_key = jax.random.split(key)
        trials = buffer.sample(sample_key, cfg.batch_trials)
        grads, stats = grad_fn(params, agent, norms, trials, loss_key, cfg)
        updates, new_opt_state = tx.update(grads, opt_state, params)
        new_params = optax.apply_updates(params, updates)
        keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(active, a, b), new, old)  # noqa: E731
        return (keep(new_params, params), keep(new_opt_state, opt_state)), stats

    (params, opt_state), stats = jax.lax.scan(one, (params, opt_state), jax.random.split(key, cfg.updates))
    return params, opt_state, jax.tree.map(jnp.mean, stats)


def aux_loss(agent: Agent, params, norms: Normalizers, e: Array, task: Array) -> Array:
    """End-to-end + task inference: mean squared distance of the policy's conditioning to the target.

    TI: the latent embedding e_t against g(c_M). BI: the base network the hypernetwork
    generates from e_t against the one it generates from g(c_M); the generator is affine
    in its input, so that distance is d^T G d with d = e_t - g(c_M) and G the heads'
    Gram matrix, and no 198k-dimensional vector is formed. The loss trains the encoder
    (through e_t) only: g and G carry no gradient.
    """
    d = e - jax.lax.stop_gradient(conditioning.task_embedding(agent, params, norms, task))
    if agent.method.task_target == "base-net":
        gram = jax.lax.stop_gradient(agent.apply(params, method=Agent.base_net_gram))
        return jnp.mean(jnp.einsum("...i,ij,...j->...", d, gram, d))
    return jnp.mean(jnp.sum(d**2, axis=-1))
