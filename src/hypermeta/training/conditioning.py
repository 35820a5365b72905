"""What the policy is conditioned on, in one place for acting, PPO and evaluation.

The conditioning embedding is e_t = tanh(Linear(z_t)) from the encoder's latent, or
g(c) = tanh(Linear(norm(c_M))) from the true task while a method pre-trains its
multi-task policy (or always, for the multi-task oracle); the method's parts decide
(`methods.policy_inputs`, `methods.pretraining`). VariBAD-type latents (mu, log sigma^2)
are normalised by running statistics and their gradient is stopped: only the ELBO trains
that encoder. End-to-end latents are used raw, with gradient (the reference forbids
normalising a latent that PPO trains through; `methods.encoder_objectives`).
"""

from __future__ import annotations

from flax import struct

from hypermeta.envs.base import Array
from hypermeta.networks.agent import Agent
from hypermeta.training.normalize import RunningMeanStd


@struct.dataclass
class Normalizers:
    """Running statistics of the policy's inputs; they change only between updates."""

    obs: RunningMeanStd
    latent: RunningMeanStd
    task: RunningMeanStd

    @staticmethod
    def create(obs_dim: int, latent_features: int, task_dim: int) -> Normalizers:
        return Normalizers(
            RunningMeanStd.create((obs_dim,)), RunningMeanStd.create((latent_features,)), RunningMeanStd.create((task_dim,))
        )

    def update(self, obs: Array, latent: Array, task: Array) -> Normalizers:
        return Normalizers(self.obs.update(obs), self.latent.update(latent), self.task.update(task))


def task_embedding(agent: Agent, params, norms: Normalizers, task: Array) -> Array:
    """g(c_M) for raw task vectors."""
    return agent.embed_task(params, norms.task.normalize(task))


def embedding(agent: Agent, params, norms: Normalizers, latent: Array, task: Array, use_task: Array | bool,
              latent_gradient: bool = False) -> Array:
    """The policy's conditioning embedding: g(c_M) where `use_task`, else from the latent.

    `latent_gradient` keeps the gradient with respect to a VariBAD-type latent (only the
    latent-gradient analysis asks for it; training stops it)."""
    return agent.method.policy_input.embedding(agent, params, norms, latent, task, use_task, latent_gradient)


def policy(agent: Agent, params, norms: Normalizers, obs: Array, latent: Array, task: Array, use_task: Array | bool,
           latent_gradient: bool = False):
    """(action distribution, value) for raw observations, latents and tasks."""
    e = embedding(agent, params, norms, latent, task, use_task, latent_gradient)
    return agent.policy(params, norms.obs.normalize(obs), e)
