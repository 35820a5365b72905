"""What a method's task inference reconstructs, always without gradient into the target.

* `NO_TARGET` ("none"): nothing (RNN, VI, the oracle).
* `RAW_TASK` ("task"): the raw task vector c_M (TI Naive).
* `TASK_EMBEDDING` ("embedding"): g(c_M), learned by multi-task pre-training (TI, TI++).
* `BASE_NET` ("base-net"): the base network the hypernetwork generates for g(c_M) (BI).

With an ELBO encoder a decoder reads a sample of the bottleneck and predicts `value`; with
an end-to-end encoder the policy's own conditioning is pulled towards it by `distance`, an
auxiliary loss added to PPO (paper appendix 8.3). A new target is a subclass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp

from hypermeta.envs.base import Array
from hypermeta.training import conditioning
from hypermeta.training.conditioning import Normalizers

if TYPE_CHECKING:
    from hypermeta.methods.encoder_objectives import EncoderObjective
    from hypermeta.methods.pretraining import Pretraining
    from hypermeta.networks.agent import Agent


@dataclass(frozen=True)
class TaskTarget:
    """A target of task inference: the base of every target (a subclass gives `dim` and
    `value`, and `distance` where an end-to-end encoder may infer it)."""

    name: str

    @property
    def decoded(self) -> bool:
        """Whether task inference reconstructs anything (a task decoder or an auxiliary loss)."""
        return True

    def dim(self, agent: Agent) -> int:
        """Size of the target."""
        raise NotImplementedError(f"task target {self.name!r} has no dim()")

    def check(self, conditioning: str, encoder: EncoderObjective, pretrain: Pretraining) -> str | None:
        """Why a method of these parts cannot have this target (None: it can)."""
        return None

    def value(self, agent: Agent, params: Any, norms: Normalizers, task: Array) -> Array:
        """The target for raw task vectors (..., task_dim) -> (..., dim), without gradient."""
        raise NotImplementedError(f"task target {self.name!r} has no value()")

    def distance(self, agent: Agent, params: Any, norms: Normalizers, e: Array, task: Array) -> Array:
        """End-to-end + task inference: the mean squared error of the conditioning embedding
        `e` as an estimate of the target, averaged over items and dimensions (the reference's
        `add_ti_loss`: `.mean()`). It trains the encoder (through `e`) only."""
        raise NotImplementedError(f"task target {self.name!r} cannot be inferred end to end (no distance())")


@dataclass(frozen=True)
class NoTarget(TaskTarget):
    """Nothing to infer (the methods without task inference)."""

    @property
    def decoded(self) -> bool:
        return False

    def dim(self, agent: Agent) -> int:
        return 0


@dataclass(frozen=True)
class RawTask(TaskTarget):
    """c_M itself."""

    def dim(self, agent: Agent) -> int:
        return agent.task_dim

    def check(self, conditioning: str, encoder: EncoderObjective, pretrain: Pretraining) -> str | None:
        if encoder.trained_by_ppo:
            return "an end-to-end latent cannot be compared with the raw task"
        return None

    def value(self, agent: Agent, params: Any, norms: Normalizers, task: Array) -> Array:
        return task


@dataclass(frozen=True)
class TaskEmbeddingTarget(TaskTarget):
    """g(c_M), the multi-task policy's task embedding."""

    def dim(self, agent: Agent) -> int:
        return agent.model.policy_latent_embed

    def check(self, conditioning: str, encoder: EncoderObjective, pretrain: Pretraining) -> str | None:
        if not pretrain.uses_task_embedding:
            return f"a {self.name} target needs pre-training, which learns the task embedding g(c) it is made from"
        return None

    def value(self, agent: Agent, params: Any, norms: Normalizers, task: Array) -> Array:
        return jax.lax.stop_gradient(self._embedding(agent, params, norms, task))

    def distance(self, agent: Agent, params: Any, norms: Normalizers, e: Array, task: Array) -> Array:
        return jnp.mean(self._difference(agent, params, norms, e, task) ** 2)

    @staticmethod
    def _embedding(agent: Agent, params: Any, norms: Normalizers, task: Array) -> Array:
        return conditioning.task_embedding(agent, params, norms, task)

    def _difference(self, agent: Agent, params: Any, norms: Normalizers, e: Array, task: Array) -> Array:
        return e - jax.lax.stop_gradient(self._embedding(agent, params, norms, task))


@dataclass(frozen=True)
class BaseNetTarget(TaskEmbeddingTarget):
    """The base network (every weight and bias of actor and critic) generated for g(c_M)."""

    def dim(self, agent: Agent) -> int:
        return agent.base_net_size

    def check(self, conditioning: str, encoder: EncoderObjective, pretrain: Pretraining) -> str | None:
        if conditioning != "hyper":
            return "a base-net target needs a hypernetwork"
        return super().check(conditioning, encoder, pretrain)

    def value(self, agent: Agent, params: Any, norms: Normalizers, task: Array) -> Array:
        return jax.lax.stop_gradient(agent.base_net(params, self._embedding(agent, params, norms, task)))

    def distance(self, agent: Agent, params: Any, norms: Normalizers, e: Array, task: Array) -> Array:
        """The generator is affine in its input, so the distance of the two generated networks
        is d^T G d with d = e - g(c_M) and G the heads' Gram matrix: no 198k-dimensional
        vector is formed. G carries no gradient."""
        d = self._difference(agent, params, norms, e, task)
        gram = jax.lax.stop_gradient(agent.base_net_gram(params))
        return jnp.mean(jnp.einsum("...i,ij,...j->...", d, gram, d)) / agent.base_net_size


NO_TARGET = NoTarget("none")
RAW_TASK = RawTask("task")
TASK_EMBEDDING = TaskEmbeddingTarget("embedding")
BASE_NET = BaseNetTarget("base-net")
BY_NAME: dict[str, TaskTarget] = {t.name: t for t in (NO_TARGET, RAW_TASK, TASK_EMBEDDING, BASE_NET)}
