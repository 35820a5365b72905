"""Recurrent PPO over trials: reward scaling, GAE and the clipped update.

The update replays each minibatch's stored sequences through the encoder from
their stored initial hidden state (full BPTT over the rollout), then applies the
policy to all T x B steps at once: the encoder is sequential, the (heavy)
policy is one batched call. Minibatches split the environment axis.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from hypermeta.config import PPOConfig
from hypermeta.envs.base import Array, PRNGKey
from hypermeta.networks.agent import Agent
from hypermeta.training import conditioning, inference
from hypermeta.training.conditioning import Normalizers
from hypermeta.training.normalize import RunningMeanStd
from hypermeta.training.rollout import Rollout


@struct.dataclass
class RewardScaler:
    """Divides rewards by the running std of the discounted return (no mean subtraction)."""

    ret: Array  # (E,) running discounted return per environment
    rms: RunningMeanStd

    @staticmethod
    def create(num_envs: int) -> "RewardScaler":
        return RewardScaler(jnp.zeros((num_envs,)), RunningMeanStd.create())

    def scale(self, rewards: Array, dones: Array, gamma: float, clip: float) -> tuple["RewardScaler", Array]:
        """Update with a (T, E) rollout and return its scaled, clipped rewards."""

        def step(ret, inputs):
            r, d = inputs
            ret = ret * gamma + r
            return jnp.where(d, 0.0, ret), ret

        ret, returns = jax.lax.scan(step, self.ret, (rewards, dones))
        rms = self.rms.update(returns)
        scaled = jnp.clip(rewards / jnp.sqrt(rms.var + 1e-8), -clip, clip)
        return RewardScaler(ret, rms), scaled


def gae(rewards: Array, values: Array, dones: Array, last_value: Array, gamma: float, lam: float) -> tuple[Array, Array]:
    """Generalised advantage estimates and value targets for (T, E) arrays.

    `dones[t]` means step t ended the trial: nothing is bootstrapped across it.
    """

    def step(carry, inputs):
        next_adv, next_value = carry
        r, v, d = inputs
        not_done = 1.0 - d.astype(jnp.float32)
        delta = r + gamma * next_value * not_done - v
        adv = delta + gamma * lam * not_done * next_adv
        return (adv, v), adv

    _, advantages = jax.lax.scan(
        step, (jnp.zeros_like(last_value), last_value), (rewards, values, dones), reverse=True
    )
    return advantages, advantages + values


def replay_latents(agent: Agent, params, rollout: Rollout) -> Array:
    """Re-run the encoder over stored (T, B) sequences from their initial hidden state."""

    def step(h, inputs):
        prev_action, prev_reward, obs, reset = inputs
        h, latent = agent.apply(params, h, prev_action, prev_reward, obs, reset, method=Agent.encode)
        return h, latent

    _, latents = jax.lax.scan(
        step, rollout.init_hidden, (rollout.prev_action, rollout.prev_reward, rollout.obs, rollout.reset)
    )
    return latents


def _huber(x: Array) -> Array:
    return optax.huber_loss(x, delta=1.0)


def ppo_loss(
    params, agent: Agent, norms: Normalizers, batch: Rollout, advantages: Array, targets: Array, cfg: PPOConfig,
    use_task: Array | bool = False, aux_weight: float = 0.0,
) -> tuple[Array, dict[str, Array]]:
    """Clipped surrogate + clipped Huber value loss - entropy bonus, for one minibatch.

    `use_task`: the rollout was collected conditioned on the true task (pre-training).
    Methods with an auxiliary task-inference loss add `aux_weight` times it.
    """
    latents = replay_latents(agent, params, batch)
    dist, value = conditioning.policy(agent, params, norms, batch.obs, latents, batch.task, use_task)
    log_prob = dist.log_prob(batch.action)
    ratio = jnp.exp(log_prob - batch.log_prob)
    surrogate = jnp.minimum(ratio * advantages, jnp.clip(ratio, 1 - cfg.clip, 1 + cfg.clip) * advantages)
    policy_loss = -jnp.mean(surrogate)
    value_clipped = batch.value + jnp.clip(value - batch.value, -cfg.clip, cfg.clip)
    value_loss = 0.5 * jnp.mean(jnp.maximum(_huber(value - targets), _huber(value_clipped - targets)))
    entropy = jnp.mean(dist.entropy())
    loss = cfg.value_coef * value_loss + policy_loss - cfg.entropy_coef * entropy
    extra = {}
    if agent.method.has_aux_loss:
        e = conditioning.embedding(agent, params, norms, latents, batch.task, False)
        extra["task_inference_loss"] = inference.aux_loss(agent, params, norms, e, batch.task)
        loss = loss + aux_weight * extra["task_inference_loss"]
    stats = {**extra,
        "policy_loss": policy_loss,
        "value_loss": value_loss,
        "entropy": entropy,
        "approx_kl": jnp.mean(batch.log_prob - log_prob),
        "clip_fraction": jnp.mean(jnp.abs(ratio - 1) > cfg.clip),
    }
    return loss, (stats, latents)


def latent_grad_info(agent: Agent, params, norms: Normalizers, obs: Array, latents: Array) -> dict[str, Array]:
    """The paper's latent-gradient analysis (section 5, Figure 11) for one minibatch.

    The gradient of the critic's value summed over the batch with respect to the latent
    fed to the policy (the encoder's output, before the policy's latent embedding, whose
    tanh output is the hypernetwork's input for RNN+HN) and to the raw observation
    (before normalisation). Each is reduced to an L2 norm per item, then averaged over
    items; the inputs' own norms come along. RNN's policy never sees the state, so its
    state gradient is 0.
    """

    def value_sum(latent: Array, raw_obs: Array) -> Array:
        _, value = agent.apply(params, norms.obs.normalize(raw_obs), latent, method=Agent.policy)
        return value.sum()

    g_latent, g_obs = jax.grad(value_sum, argnums=(0, 1))(latents, obs)
    norm = lambda x: jnp.mean(jnp.linalg.norm(x, axis=-1))  # noqa: E731
    return {"latent_grad_norm": norm(g_latent), "state_grad_norm": norm(g_obs),
            "latent_norm": norm(latents), "state_norm": norm(obs)}


def make_optimizer(cfg: PPOConfig) -> optax.GradientTransformation:
    """Adam direction with separate gradient clipping for the encoder and the actor-critic.

    The learning rate is applied by the caller, so runs with different rates share
    one optimizer structure and can be vmapped. Decoders are the ELBO's alone.
    """

    def group(name: str) -> str:
        return "decoder" if name.startswith("dec_") else "encoder" if name.startswith(("enc_", "gru")) else "policy"

    def labels(params):
        return {"params": {name: jax.tree.map(lambda _: group(name), sub) for name, sub in params["params"].items()}}

    clip = optax.clip_by_global_norm(cfg.max_grad_norm)
    return optax.chain(
        optax.multi_transform({"encoder": clip, "policy": clip, "decoder": optax.set_to_zero()}, labels),
        optax.scale_by_adam(eps=cfg.adam_eps),
    )


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
    aux_weight: float = 0.0,
) -> tuple[Any, Any, dict[str, Array]]:
    """`cfg.epochs` passes over the rollout in `cfg.minibatches` environment-axis minibatches.

    With `grad_info`, the stats also hold `latent_grad_info` of every minibatch, taken
    with the parameters before that minibatch's step, averaged like the losses.
    """
    advantages, targets = gae(scaled_rewards, rollout.value, rollout.done, rollout.last_value, cfg.gamma, cfg.gae_lambda)
    advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    num_envs = rollout.reward.shape[1]
    mb_envs = num_envs // cfg.minibatches
    grad_fn = jax.value_and_grad(ppo_loss, has_aux=True)

    def take(envs: Array):
        """Select environments (axis 1 of time-major arrays, axis 0 of init_hidden/last_value)."""
        batch = jax.tree.map(lambda x: x[:, envs], rollout.replace(init_hidden=None, last_value=None))
        batch = batch.replace(init_hidden=rollout.init_hidden[envs], last_value=rollout.last_value[envs])
        return batch, advantages[:, envs], targets[:, envs]

    def minibatch_step(carry, envs):
        params, opt_state = carry
        batch, adv, tgt = take(envs)
        (_, (stats, latents)), grads = grad_fn(params, agent, norms, batch, adv, tgt, cfg, use_task, aux_weight)
        if grad_info:
            stats = {**stats, **latent_grad_info(agent, params, norms, batch.obs, latents)}
        direction, opt_state = tx.update(grads, opt_state, params)
        params = jax.tree.map(lambda p, d: p - lr * d, params, direction)
        return (params, opt_state), stats

    def epoch(carry, key):
        order = jax.random.permutation(key, num_envs).reshape(cfg.minibatches, mb_envs)
        return jax.lax.scan(minibatch_step, carry, order)

    (params, opt_state), stats = jax.lax.scan(epoch, (params, opt_state), jax.random.split(key, cfg.epochs))
    return params, opt_state, jax.tree.map(jnp.mean, stats)
