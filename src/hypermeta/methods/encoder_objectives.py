"""What trains a method's trajectory encoder, with that objective's latents and loss.

* `END_TO_END` ("rl"): PPO's gradient flows through the latent into the encoder (RL^2 and
  the recurrent hypernetwork); PPO replays the encoder over the rollout, and a method with
  a task target adds the auxiliary task-inference loss to PPO's (paper appendix 8.3).
* `ELBO` ("elbo"): a Gaussian bottleneck trained by the VariBAD ELBO on stored trials
  after each PPO update; the policy reads the normalised latent without its gradient.
* `NO_ENCODER` ("none"): nothing trains the encoder (the multi-task oracle never reads it).

A new objective is a subclass with its own `policy_latent`, `train` and `extra_loss`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jax
import optax

from hypermeta.config import InferenceConfig
from hypermeta.envs.base import Array, PRNGKey
from hypermeta.networks.agent import Agent, action_features
from hypermeta.training import conditioning, inference
from hypermeta.training.conditioning import Normalizers
from hypermeta.training.experience import EnvCarry, Rollout
from hypermeta.training.trial_buffer import TrialBuffer

if TYPE_CHECKING:
    from hypermeta.training.ppo import ExtraLoss, Minibatch


@dataclass(frozen=True)
class EncoderObjective:
    """What trains the encoder: nothing but PPO by default (subclasses add their own)."""

    name: str
    trained_by_ppo: bool
    """PPO's gradient reaches the encoder: the update replays it over the rollout with the
    current parameters instead of reading the latents stored while acting."""
    variational: bool = False
    """The latent is a Gaussian belief [mu, log sigma^2] with decoders (VariBAD-type)."""

    def policy_latent(self, norms: Normalizers, latent: Array, keep_gradient: bool) -> Array:
        """The latent as the policy's latent embedding reads it (raw: PPO trains through it)."""
        return latent

    def buffer_shape(self, cfg: InferenceConfig, num_envs: int, trial_steps: int) -> tuple[int, int]:
        """(trials, steps per trial) of the run's trial buffer: a one-step stub unless trials are replayed."""
        return num_envs, 1

    def extra_loss(self, agent: Agent, weight: float) -> ExtraLoss | None:
        """A term PPO adds to its loss (None: PPO's loss alone)."""
        return None

    def train(self, agent: Agent, tx: optax.GradientTransformation, cfg: InferenceConfig, params: Any,
              opt_state: Any, norms: Normalizers, trials: TrialBuffer, rollout: Rollout, carry: EnvCarry,
              learn: Array, key: PRNGKey) -> tuple[Any, Any, TrialBuffer, EnvCarry, dict[str, Array]]:
        """The encoder's own training after PPO's update: (params, its optimiser state, trials,
        carry, statistics). `learn`: whether task inference moves in this update."""
        return params, opt_state, trials, carry, {}


@dataclass(frozen=True)
class EndToEnd(EncoderObjective):
    """PPO trains the encoder through the policy; a task target becomes an auxiliary loss."""

    def extra_loss(self, agent: Agent, weight: float) -> ExtraLoss | None:
        """`weight` x the distance of the policy's conditioning to the method's task target
        (None without a target): end-to-end + task inference."""
        target = agent.method.task_target
        if not target.decoded:
            return None

        def aux(params: Any, norms: Normalizers, mb: Minibatch) -> tuple[Array, dict[str, Array]]:
            e = conditioning.embedding(agent, params, norms, mb.latent, mb.task, False)
            loss = target.distance(agent, params, norms, e, mb.task)
            return weight * loss, {"task_inference_loss": loss}

        return aux


@dataclass(frozen=True)
class Elbo(EncoderObjective):
    """The VariBAD ELBO on stored trials (`training.inference`), the latent stop-gradiented
    into the policy."""

    def policy_latent(self, norms: Normalizers, latent: Array, keep_gradient: bool) -> Array:
        """Normalised by running statistics; only the ELBO trains the encoder, so its gradient
        is stopped (`keep_gradient`: the latent-gradient analysis asks for it)."""
        latent = norms.latent.normalize(latent)
        return latent if keep_gradient else jax.lax.stop_gradient(latent)

    def buffer_shape(self, cfg: InferenceConfig, num_envs: int, trial_steps: int) -> tuple[int, int]:
        return cfg.buffer_trials, trial_steps

    def train(self, agent: Agent, tx: optax.GradientTransformation, cfg: InferenceConfig, params: Any,
              opt_state: Any, norms: Normalizers, trials: TrialBuffer, rollout: Rollout, carry: EnvCarry,
              learn: Array, key: PRNGKey) -> tuple[Any, Any, TrialBuffer, EnvCarry, dict[str, Array]]:
        """File the rollout's finished trials, take the ELBO steps, re-encode the running trials.

        Every trial is filed, pre-training ones included: the reference inserts every step
        into the VAE's buffer (`metalearner.py`, `vae.rollout_storage.insert`), so the
        methods with a policy reset (TI, TI+HN) start meta-training with a buffer of
        multi-task-policy trials (their task inference is frozen meanwhile: `learn`).
        """
        a_feat = action_features(agent.action_space, rollout.action)
        trials = trials.add(rollout.obs, a_feat, rollout.reward, rollout.next_obs, rollout.cell,
                            rollout.cell_hit, rollout.task, rollout.done)
        params, opt_state, stats = inference.vae_update(agent, tx, cfg, params, opt_state, norms, trials, key,
                                                        enabled=learn)
        # The carried hidden state came from the encoder before this update: recompute it.
        carry = carry.replace(hidden=inference.running_hidden(agent, params, trials.running))
        return params, opt_state, trials, carry, stats


END_TO_END = EndToEnd("rl", trained_by_ppo=True)
ELBO = Elbo("elbo", trained_by_ppo=False, variational=True)
NO_ENCODER = EncoderObjective("none", trained_by_ppo=False)
BY_NAME: dict[str, EncoderObjective] = {o.name: o for o in (END_TO_END, ELBO, NO_ENCODER)}
