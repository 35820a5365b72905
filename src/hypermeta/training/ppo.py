"""Recurrent PPO over trials: reward scaling, GAE and the clipped update.

Minibatches (`PPOConfig.minibatch`) are, by default, the reference's: each is a random
subset of *all* T x E transitions of the rollout, drawn afresh every epoch
(`online_storage.feed_forward_generator`). For methods whose RL loss trains the encoder
(RNN, RNN+S, RNN+HN, the end-to-end + TI methods) the encoder is replayed over the
whole rollout from its stored initial hidden state before every minibatch step, so
each minibatch carries gradients through the current encoder (full BPTT over the
rollout, as the reference's `recompute_embeddings`). VariBAD-type methods read the
latents stored while acting: PPO does not move their encoder, so a replay would
recompute the same numbers. "envs" splits the environment axis instead: each
minibatch replays whole sequences of E / minibatches environments.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from hypermeta.config import PPOConfig, ReturnReset
from hypermeta.envs.base import Array, PRNGKey
from hypermeta.networks.agent import Agent, group_labels
from hypermeta.training import conditioning
from hypermeta.training.conditioning import Normalizers
from hypermeta.training.experience import Rollout
from hypermeta.training.normalize import RunningMeanStd


@struct.dataclass
class RewardScaler:
    """Divides rewards by the running std of the discounted return (no mean subtraction)."""

    ret: Array  # (E,) running discounted return per environment
    rms: RunningMeanStd

    @staticmethod
    def create(num_envs: int) -> RewardScaler:
        return RewardScaler(jnp.zeros((num_envs,)), RunningMeanStd.create())

    def scale(self, rewards: Array, dones: Array, gamma: float, clip: float,
              reset: ReturnReset = "all") -> tuple[RewardScaler, Array]:
        """Update with a (T, E) rollout and return its scaled, clipped rewards.

        `reset` (`PPOConfig.return_reset`): which running returns a trial's end zeroes
        after the step is recorded: "all" every environment's (the reference), "own" the
        finished environment's only."""

        def step(ret, inputs):
            r, d = inputs
            # The reference's VecNormalize zeroes the running return of a finished trial
            # *before* recording it, so a trial's last step adds a 0 to the statistics...
            ret = jnp.where(d, 0.0, ret * gamma + r)
            # ...and then resets the finished environment through `VecNormalize.reset`, which
            # zeroes every environment's running return (utils/helpers.py `reset_env`).
            after = jnp.where(jnp.any(d), 0.0, ret) if reset == "all" else ret
            return after, ret

        ret, returns = jax.lax.scan(step, self.ret, (rewards, dones))
        rms = self.rms.update(returns)
        scaled = jnp.clip(rewards / jnp.sqrt(rms.var + 1e-8), -clip, clip)
        return RewardScaler(ret, rms), scaled


def standardize(advantages: Array) -> Array:
    """Advantages standardised over the whole rollout as the reference's PPO: torch's
    `advantages.std()` is the unbiased (N - 1) estimate, with 1e-5 added."""
    return (advantages - advantages.mean()) / (advantages.std(ddof=1) + 1e-5)


def gae(rewards: Array, values: Array, dones: Array, last_value: Array, gamma: float, lam: float,
        timeouts: Array | None = None) -> tuple[Array, Array]:
    """Generalised advantage estimates and value targets for (T, E) arrays.

    `dones[t]` means step t ended the trial: nothing is bootstrapped across it.
    `timeouts[t]` (the reference's "proper time limits", `bad_masks`): step t ended the
    trial at a time limit, so its advantage is 0 and its value target is its own value
    (`online_storage._compute_returns`); earlier steps then bootstrap from V(s_t).
    """
    if timeouts is None:
        timeouts = jnp.zeros_like(dones)

    def step(carry, inputs):
        next_adv, next_value = carry
        r, v, d, cut = inputs
        not_done = 1.0 - d.astype(jnp.float32)
        delta = r + gamma * next_value * not_done - v
        adv = (delta + gamma * lam * not_done * next_adv) * (1.0 - cut.astype(jnp.float32))
        return (adv, v), adv

    _, advantages = jax.lax.scan(
        step, (jnp.zeros_like(last_value), last_value), (rewards, values, dones, timeouts), reverse=True
    )
    return advantages, advantages + values


def replay_latents(agent: Agent, params, rollout: Rollout) -> Array:
    """Re-run the encoder over stored (T, B) sequences from their initial hidden state."""
    _, latents = agent.encode_sequence(params, rollout.init_hidden, rollout.encoder_inputs())
    return latents


def _huber(x: Array) -> Array:
    return optax.huber_loss(x, delta=1.0)


@struct.dataclass
class Minibatch:
    """The per-transition data of one minibatch, flattened to (N, ...)."""

    obs: Array
    latent: Array  # the latent the policy reads (replayed through the current encoder where PPO trains it)
    task: Array
    action: Array
    log_prob: Array
    value: Array
    advantage: Array
    target: Array


ExtraLoss = Callable[[Any, Normalizers, Minibatch], tuple[Array, dict[str, Array]]]
"""(params, norms, minibatch) -> (a term added to the PPO loss, its statistics): how a method
adds its own objective (the end-to-end + task inference auxiliary loss) to PPO's."""


def policy_latents(agent: Agent, params, rollout: Rollout) -> Array:
    """The (T, E, F) latents the policy reads in the update.

    Where PPO trains the encoder (`EncoderObjective.trained_by_ppo`) they are replayed from the rollout's
    initial hidden state with the current parameters (a graph through the encoder);
    otherwise the latents stored while acting are those the replay would give.
    """
    if agent.method.encoder.trained_by_ppo:
        return replay_latents(agent, params, rollout)
    return rollout.latent


def gather(rollout: Rollout, latents: Array, advantages: Array, targets: Array, idx: Array) -> Minibatch:
    """The transitions at flat indices `idx` of (T, E) arrays (index t * E + e)."""
    flat = lambda x: x.reshape((-1,) + x.shape[2:])[idx]  # noqa: E731
    return Minibatch(obs=flat(rollout.obs), latent=flat(latents), task=flat(rollout.task), action=flat(rollout.action),
                     log_prob=flat(rollout.log_prob), value=flat(rollout.value), advantage=flat(advantages),
                     target=flat(targets))


def ppo_loss(
    params, agent: Agent, norms: Normalizers, rollout: Rollout, idx: Array, advantages: Array, targets: Array,
    cfg: PPOConfig, use_task: Array | bool = False, extra_loss: ExtraLoss | None = None,
) -> tuple[Array, tuple[dict[str, Array], Minibatch]]:
    """Clipped surrogate + clipped Huber value loss - entropy bonus, for the transitions `idx`
    of `rollout` (the encoder is replayed over all of `rollout` first, see `policy_latents`).

    `use_task`: the rollout was collected conditioned on the true task (pre-training).
    `extra_loss`, if given, adds a method's own term (see `ExtraLoss`).
    """
    mb = gather(rollout, policy_latents(agent, params, rollout), advantages, targets, idx)
    dist, value = conditioning.policy(agent, params, norms, mb.obs, mb.latent, mb.task, use_task)
    log_prob = dist.log_prob(mb.action)
    ratio = jnp.exp(log_prob - mb.log_prob)
    adv = mb.advantage
    surrogate = jnp.minimum(ratio * adv, jnp.clip(ratio, 1 - cfg.clip, 1 + cfg.clip) * adv)
    policy_loss = -jnp.mean(surrogate)
    value_clipped = mb.value + jnp.clip(value - mb.value, -cfg.clip, cfg.clip)
    value_loss = 0.5 * jnp.mean(jnp.maximum(_huber(value - mb.target), _huber(value_clipped - mb.target)))
    entropy = jnp.mean(dist.entropy())
    loss = cfg.value_coef * value_loss + policy_loss - cfg.entropy_coef * entropy
    extra = {}
    if extra_loss is not None:
        term, extra = extra_loss(params, norms, mb)
        loss = loss + term
    stats = {**extra,
        "policy_loss": policy_loss,
        "value_loss": value_loss,
        "entropy": entropy,
        "approx_kl": jnp.mean(mb.log_prob - log_prob),
        "clip_fraction": jnp.mean(jnp.abs(ratio - 1) > cfg.clip),
    }
    return loss, (stats, mb)


def latent_grad_info(agent: Agent, params, norms: Normalizers, mb: Minibatch,
                     use_task: Array | bool = False) -> dict[str, Array]:
    """The paper's latent-gradient analysis (section 5, Figure 11) for one minibatch.

    The gradient of the critic's value summed over the batch with respect to the latent
    fed to the policy (the encoder's output, before the policy's latent normalisation and
    embedding, whose tanh output is the hypernetwork's input for RNN+HN) and to the raw
    observation (before normalisation), through the same conditioning path as acting
    (`conditioning.policy`: latent normalisation for VariBAD-type methods, the task
    embedding during pre-training, where the latent's gradient is therefore 0). Each is
    reduced to an L2 norm per item, then averaged over items; the inputs' own norms come
    along. RNN's policy never sees the state, so its state gradient is 0.
    """

    def value_sum(latent: Array, raw_obs: Array) -> Array:
        _, value = conditioning.policy(agent, params, norms, raw_obs, latent, mb.task, use_task,
                                       latent_gradient=True)
        return value.sum()

    g_latent, g_obs = jax.grad(value_sum, argnums=(0, 1))(mb.latent, mb.obs)
    norm = lambda x: jnp.mean(jnp.linalg.norm(x, axis=-1))  # noqa: E731
    return {"latent_grad_norm": norm(g_latent), "state_grad_norm": norm(g_obs),
            "latent_norm": norm(mb.latent), "state_norm": norm(mb.obs)}


def make_optimizer(cfg: PPOConfig) -> optax.GradientTransformation:
    """Adam directions with separate gradient clipping for the encoder and the actor-critic.

    As in the reference, the encoder has its own Adam (the VAE optimiser, which RL^2-type
    methods train with the policy's learning rate) with PyTorch's default eps 1e-8
    (`cfg.encoder_adam_eps`), and the actor-critic's Adam uses `cfg.adam_eps`. The
    learning rate is applied by the caller, so runs with different rates share one
    optimizer structure and can be vmapped. Decoders are the ELBO's alone.
    """

    def labels(params):
        return group_labels(params, lambda group: group.ppo)

    clip = optax.clip_by_global_norm(cfg.max_grad_norm)
    return optax.multi_transform({
        "encoder": optax.chain(clip, optax.scale_by_adam(eps=cfg.encoder_adam_eps)),
        "policy": optax.chain(clip, optax.scale_by_adam(eps=cfg.adam_eps)),
        "none": optax.set_to_zero(),
    }, labels)


def minibatch_indices(key: PRNGKey, num_steps: int, num_envs: int, minibatches: int, mode: str) -> Array:
    """(minibatches, size) flat transition indices (t * E + e) for one epoch.

    "transitions": a random partition of all T x E transitions (the reference's
    `BatchSampler(SubsetRandomSampler(...), drop_last=True)`; a remainder is dropped).
    "envs": every step of E / minibatches randomly chosen environments per minibatch.
    """
    if mode == "transitions":
        size = num_steps * num_envs // minibatches
        return jax.random.permutation(key, num_steps * num_envs)[: minibatches * size].reshape(minibatches, size)
    envs = jax.random.permutation(key, num_envs).reshape(minibatches, num_envs // minibatches)
    return (jnp.arange(num_steps)[None, :, None] * num_envs + envs[:, None, :]).reshape(minibatches, -1)


def _take_envs(rollout: Rollout, envs: Array) -> Rollout:
    """The sub-rollout of environments `envs` (axis 1 of time-major arrays, axis 0 of the rest)."""
    sub = jax.tree.map(lambda x: x[:, envs], rollout.replace(init_hidden=None, last_value=None))
    return sub.replace(init_hidden=jax.tree.map(lambda h: h[envs], rollout.init_hidden), last_value=rollout.last_value[envs])


def update(
    agent: Agent,
    tx: optax.GradientTransformation,
    cfg: PPOConfig,
    params,
    opt_state,
    norms: Normalizers,
    rollout: Rollout,
    scaled_rewards: Array,
    lr: Array,
    key: PRNGKey,
    grad_info: bool = False,
    use_task: Array | bool = False,
    extra_loss: ExtraLoss | None = None,
) -> tuple[Any, Any, dict[str, Array]]:
    """`cfg.epochs` passes over the rollout in `cfg.minibatches` minibatches (`cfg.minibatch`).

    With `grad_info`, the stats also hold `latent_grad_info` of every minibatch, taken
    with the parameters before that minibatch's step, averaged like the losses.
    """
    timeouts = rollout.timeout if cfg.time_limit == "proper" else None
    advantages, targets = gae(scaled_rewards, rollout.value, rollout.done, rollout.last_value, cfg.gamma,
                              cfg.gae_lambda, timeouts)
    advantages = standardize(advantages)
    num_steps, num_envs = rollout.reward.shape
    grad_fn = jax.value_and_grad(ppo_loss, has_aux=True)

    def minibatch_step(carry, idx):
        params, opt_state = carry
        if cfg.minibatch == "envs":
            # Only the chosen environments' sequences are replayed: re-index into them.
            envs = idx[: num_envs // cfg.minibatches] % num_envs
            data = _take_envs(rollout, envs)
            adv, tgt = advantages[:, envs], targets[:, envs]
            idx = jnp.arange(idx.shape[0])
        else:
            data, adv, tgt = rollout, advantages, targets
        (_, (stats, mb)), grads = grad_fn(params, agent, norms, data, idx, adv, tgt, cfg, use_task, extra_loss)
        if grad_info:
            stats = {**stats, **latent_grad_info(agent, params, norms, mb, use_task)}
        direction, opt_state = tx.update(grads, opt_state, params)
        params = jax.tree.map(lambda p, d: p - lr * d, params, direction)
        return (params, opt_state), stats

    def epoch(carry, key):
        order = minibatch_indices(key, num_steps, num_envs, cfg.minibatches, cfg.minibatch)
        return jax.lax.scan(minibatch_step, carry, order)

    (params, opt_state), stats = jax.lax.scan(epoch, (params, opt_state), jax.random.split(key, cfg.epochs))
    return params, opt_state, jax.tree.map(jnp.mean, stats)
