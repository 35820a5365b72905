"""What a method's policy is conditioned on, outside pre-training.

* `LATENT` ("latent"): the encoder's latent, as its encoder objective hands it over
  (`EncoderObjective.policy_latent`), embedded as e_t = tanh(Linear(z_t)); during
  multi-task pre-training g(c_M) instead (`Pretraining.condition`).
* `TASK` ("task"): always g(c_M) from the true task (the multi-task oracle).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hypermeta.envs.base import Array
from hypermeta.training import conditioning
from hypermeta.training.conditioning import Normalizers

if TYPE_CHECKING:
    from hypermeta.networks.agent import Agent


@dataclass(frozen=True)
class PolicyInput:
    """The encoder's latent (pre-training aside)."""

    name: str

    @property
    def reads_task(self) -> bool:
        """Whether the policy needs the true task when acting (not only while pre-training)."""
        return False

    def embedding(self, agent: Agent, params: Any, norms: Normalizers, latent: Array, task: Array,
                  use_task: Array | bool, keep_gradient: bool) -> Array:
        """The conditioning embedding for raw latents and tasks."""
        method = agent.method
        e = agent.embed_latent(params, method.encoder.policy_latent(norms, latent, keep_gradient))
        return method.pretrain.condition(e, lambda: conditioning.task_embedding(agent, params, norms, task), use_task)


@dataclass(frozen=True)
class TrueTask(PolicyInput):
    """g(c_M) at every step."""

    @property
    def reads_task(self) -> bool:
        return True

    def embedding(self, agent: Agent, params: Any, norms: Normalizers, latent: Array, task: Array,
                  use_task: Array | bool, keep_gradient: bool) -> Array:
        return conditioning.task_embedding(agent, params, norms, task)


LATENT = PolicyInput("latent")
TASK = TrueTask("task")
BY_NAME: dict[str, PolicyInput] = {p.name: p for p in (LATENT, TASK)}
