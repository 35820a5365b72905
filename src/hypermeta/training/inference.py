"""Task inference: the VariBAD ELBO and its optimiser.

ELBO on a batch of stored trials (original-implementation.md 2.3, paper section 3.3):
the encoder is replayed from the zero state over each whole trial; step t's output is
a diagonal Gaussian q_t = N(mu_t, sigma_t^2) (the two halves of the linear head, the
second read as log sigma^2). Each ELBO term t draws z_t ~ q_t and decodes the *whole*
trial, past and future:

    loss = mean_trials[sum_t sum_j rec(z_t, step j)]
           + sum_trials[sum_t mean_dims (dec_task(z_t) - target)^2 + kl_weight * sum_t KL(q_t || q_{t-1})]

with q_{-1} = N(0, I): VariBAD's reductions, which the paper's kl_weight and task-inference
coefficients were tuned with (original-implementation.md 7.6): reconstruction averaged over
the trials of a batch, KL and task terms summed over them (`InferenceConfig.loss_reduction`
"mean" averages every term instead). Squared errors of states and task targets are means
over their dimensions, as the reference's MSE. With `elbo_subsample` S > 0, each trial
draws S ELBO terms t (and their KL terms) and S decoded steps j within its own length.
The reference's KL there is `kl_divergences[elbo_indices]`: S x B time rows, each summed
over all B trials of the batch, i.e. B times the per-trial sum in expectation, with trials
and steps mismatched (original-implementation.md 7.6, second bullet). Its kl_weight was
tuned with that factor, so `InferenceConfig.kl_scale` "reference" multiplies the
per-trial sum by B (the scale without the mismatch); "trial" keeps the per-trial sum.
Batches hold distinct trials (drawn without replacement), fewer while the buffer is
smaller than a batch; averages are over the batch's real trials.
Targets: the raw task c_M (TI Naive), g(c_M) (TI), or the base network the
hypernetwork generates for g(c_M) (BI), always without gradient (`methods.task_targets`;
the same targets give end-to-end methods their auxiliary loss there).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from hypermeta.config import InferenceConfig
from hypermeta.envs.base import Array, PRNGKey
from hypermeta.networks.agent import Agent, group_labels
from hypermeta.networks.decoders import Decoders
from hypermeta.networks.encoder import EncoderInputs
from hypermeta.training.conditioning import Normalizers
from hypermeta.training.trial_buffer import TrialBuffer, Trials

ELBO_STATS = ("elbo_loss", "kl", "reward_reconstruction", "state_reconstruction", "task_inference_loss")


def gaussian_kl(mu: Array, logvar: Array, prior_mu: Array, prior_logvar: Array) -> Array:
    """KL(N(mu, e^logvar) || N(prior_mu, e^prior_logvar)) of diagonal Gaussians, summed over the last axis."""
    return 0.5 * jnp.sum(
        prior_logvar - logvar + (jnp.exp(logvar) + (mu - prior_mu) ** 2) / jnp.exp(prior_logvar) - 1.0, axis=-1
    )


def encode_trials(agent: Agent, params, trials: Trials) -> Array:
    """The encoder's outputs (N, L, 2 * latent_dim) over whole stored trials, from a trial start."""
    n = trials.length.shape[0]
    _, latents = agent.encode_sequence(params, agent.initial_carry((n,)), trials.encoder_inputs())
    return jnp.swapaxes(latents, 0, 1)


def running_hidden(agent: Agent, params, running: Trials) -> Array:
    """Encoder carry after each unfinished trial's stored steps (re-encoded with `params`).

    Each trial's steps are moved to the end of the window (the padding first), so one pass
    of `encode_sequence` ends on every trial's last step; its first step starts a trial,
    which resets whatever the padding left. A trial with no steps yet gets the initial carry.
    """
    n, window = running.reward.shape
    trials_inputs = running.encoder_inputs()
    shift = window - running.length  # (N,)
    source = (jnp.arange(window)[:, None] - shift[None, :]) % window  # (L, N): step read at each position
    take = lambda x: jnp.take_along_axis(x, source.reshape(source.shape + (1,) * (x.ndim - 2)), axis=0)  # noqa: E731
    inputs = EncoderInputs(take(trials_inputs.prev_action), take(trials_inputs.prev_reward), take(trials_inputs.obs),
                           jnp.arange(window)[:, None] == shift[None, :])
    initial = agent.initial_carry((n,))
    carry, _ = agent.encode_sequence(params, initial, inputs)
    started = running.length > 0
    return jax.tree.map(lambda c, i: jnp.where(started.reshape((n,) + (1,) * (c.ndim - 1)), c, i), carry, initial)


def elbo_steps(key: PRNGKey, length: Array, padded: int, n: int) -> tuple[Array, Array]:
    """(N, S) step indices of each trial and whether each is a real step.

    `n` > 0: `n` steps per trial drawn uniformly with replacement within the trial's own
    length (the reference's `vae_subsample_elbos/decodes`; never from the padding).
    `n` = 0: every step of the padded length, masked beyond the trial's length.
    """
    if n <= 0:
        steps = jnp.broadcast_to(jnp.arange(padded)[None, :], (length.shape[0], padded))
        return steps, steps < length[:, None]
    steps = jax.random.randint(key, (length.shape[0], n), 0, jnp.maximum(length, 1)[:, None])
    return steps, jnp.broadcast_to((length > 0)[:, None], steps.shape)


def _at(x: Array, steps: Array) -> Array:
    """x[i, steps[i]] for per-trial data x (N, L, ...) and steps (N, S)."""
    idx = steps.reshape(steps.shape + (1,) * (x.ndim - 2))
    return jnp.take_along_axis(x, idx, axis=1)


def elbo_loss(params, agent: Agent, norms: Normalizers, trials: Trials, key: PRNGKey,
              cfg: InferenceConfig) -> tuple[Array, dict[str, Array]]:
    """Negative ELBO (plus task inference) of a batch of trials; see the module docstring."""
    m, ld = agent.method, agent.model.latent_dim
    n, length = trials.reward.shape
    latents = encode_trials(agent, params, trials)
    mu, logvar = latents[..., :ld], latents[..., ld:]
    prior_mu = jnp.concatenate([jnp.zeros_like(mu[:, :1]), mu[:, :-1]], axis=1)
    prior_logvar = jnp.concatenate([jnp.zeros_like(logvar[:, :1]), logvar[:, :-1]], axis=1)
    kl_steps = gaussian_kl(mu, logvar, prior_mu, prior_logvar)  # (N, L)

    noise_key, t_key, j_key = jax.random.split(key, 3)
    z = mu + jnp.exp(0.5 * logvar) * jax.random.normal(noise_key, mu.shape)
    ts, mask_t = elbo_steps(t_key, trials.length, length, cfg.elbo_subsample)  # ELBO terms
    mask_t = mask_t.astype(jnp.float32)
    if cfg.elbo_subsample > 0 and cfg.resample_decodes:
        # As many decodes as the batch's longest trial: a static count needs the padded
        # length, so draw that many and weight each by longest / padded (same expectation).
        js, mask_j = elbo_steps(j_key, trials.length, length, length)
        mask_j = mask_j.astype(jnp.float32) * (jnp.max(trials.length) / length)
    else:
        js, mask_j = elbo_steps(j_key, trials.length, length, cfg.elbo_subsample)  # decoded steps
        mask_j = mask_j.astype(jnp.float32)
    z_t = _at(z, ts)
    pair_mask = mask_t[:, :, None] * mask_j[:, None, :]  # (N, St, Sj): ELBO term t decodes step j
    # Trials are averaged (reconstruction) or, with the reference's reduction, summed (KL, task),
    # over the batch's real trials (fewer than its rows while the buffer holds fewer).
    real_trials = jnp.maximum(jnp.sum(trials.length > 0), 1)
    summed = 1 if cfg.loss_reduction == "reference" else real_trials
    kl = jnp.sum(_at(kl_steps, ts) * mask_t) / summed
    if cfg.elbo_subsample > 0 and cfg.kl_scale == "reference":
        kl = kl * real_trials  # the reference's S x B drawn KL rows per trial (module docstring)

    def pairs(x: Array) -> Array:
        """Per-step data (N, L, ...) at the decode steps, broadcast over the ELBO terms."""
        x = _at(x, js)
        return jnp.broadcast_to(x[:, None], (n, ts.shape[1], *x.shape[1:]))

    z_pairs = jnp.broadcast_to(z_t[:, :, None], (n, ts.shape[1], js.shape[1], ld))
    reward_rec = state_rec = task_loss = jnp.zeros(())
    if agent.inference.decode_reward:
        if agent.num_cells:
            logits = agent.decoder(params, Decoders.reward_logits, z_t)  # (N, St, cells)
            cell = jnp.broadcast_to(_at(trials.cell, js)[:, None, :], pair_mask.shape)
            picked = jnp.take_along_axis(logits, cell, axis=-1)
            hit = pairs(trials.cell_hit).astype(jnp.float32)
            err = optax.sigmoid_binary_cross_entropy(picked, hit)
        else:
            pred = agent.decoder(params, Decoders.reward_prediction, z_pairs, pairs(trials.obs), pairs(trials.action),
                                 pairs(trials.next_obs))
            err = (pred - pairs(trials.reward)) ** 2
        reward_rec = jnp.sum(err * pair_mask) / real_trials
    if agent.inference.decode_state:
        pred = agent.decoder(params, Decoders.state_prediction, z_pairs, pairs(trials.obs), pairs(trials.action))
        # Mean over the state's dimensions, as the reference's MSE.
        state_rec = jnp.sum(jnp.mean((pred - pairs(trials.next_obs)) ** 2, axis=-1) * pair_mask) / real_trials
    if m.task_target.decoded:
        target = m.task_target.value(agent, params, norms, trials.task)
        err = agent.decoder(params, Decoders.task_error, z_t, target[:, None])
        # Mean over the target's dimensions (25 for g(c), ~198k for a base network), as the reference.
        task_loss = jnp.sum(err / target.shape[-1] * mask_t) / summed
    loss = reward_rec + state_rec + task_loss + cfg.kl_weight * kl
    stats = dict(zip(ELBO_STATS, (loss, kl, reward_rec, state_rec, task_loss), strict=True))
    return loss, stats


def _inference_labels(params) -> Any:
    return group_labels(params, lambda group: "train" if group.elbo else "freeze")


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
