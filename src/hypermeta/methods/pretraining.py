"""A method's multi-task pre-training: the policy first learns on g(c_M) from the true task.

* `NO_PRETRAINING` ("none").
* `RESET_POLICY` ("reset"): for the first `InferenceConfig.pretrain_updates` updates the
  policy reads g(c_M), with task inference frozen; then the policy starts again from fresh
  parameters (TI, TI+HN).
* `REUSE_POLICY` ("reuse"): the same pre-training, but the policy keeps its parameters and
  task inference trains throughout (the paper's "++").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import jax
import jax.numpy as jnp

from hypermeta.config import TrainConfig
from hypermeta.envs.base import Array, PRNGKey

State = TypeVar("State")


@dataclass(frozen=True)
class Pretraining:
    """No pre-training: the base of every phase rule, and the rule of methods without one."""

    name: str

    @property
    def uses_task_embedding(self) -> bool:
        """The policy reads g(c_M) at some point, so the agent has a task embedding."""
        return False

    def updates(self, cfg: TrainConfig) -> int:
        """Updates of the budget spent pre-training."""
        return 0

    def condition(self, e: Array, task_embedding: Callable[[], Array], use_task: Array | bool) -> Array:
        """The policy's conditioning: the latent embedding `e`, or g(c_M) where `use_task` (pre-training)."""
        return e

    def inference_learns(self, pretraining: Array) -> Array:
        """Whether task inference trains in an update (`pretraining`: it is a pre-training one)."""
        return jnp.asarray(True)

    def after_update(self, state: State, update: Array, pretrain_updates: int,
                     reset: Callable[[State, PRNGKey], State], key: PRNGKey) -> State:
        """The run's state after update number `update` (`reset`: fresh policy parameters)."""
        return state


@dataclass(frozen=True)
class ReusePolicy(Pretraining):
    """Pre-train on g(c_M), then keep the policy; task inference trains throughout."""

    @property
    def uses_task_embedding(self) -> bool:
        return True

    def updates(self, cfg: TrainConfig) -> int:
        return min(cfg.inference.pretrain_updates, cfg.num_updates)

    def condition(self, e: Array, task_embedding: Callable[[], Array], use_task: Array | bool) -> Array:
        return jnp.where(use_task, task_embedding(), e)


@dataclass(frozen=True)
class ResetPolicy(ReusePolicy):
    """Pre-train on g(c_M) with task inference frozen, then start the policy afresh."""

    def inference_learns(self, pretraining: Array) -> Array:
        return ~pretraining

    def after_update(self, state: State, update: Array, pretrain_updates: int,
                     reset: Callable[[State, PRNGKey], State], key: PRNGKey) -> State:
        return jax.lax.cond(update == pretrain_updates, reset, lambda s, k: s, state, key)


NO_PRETRAINING = Pretraining("none")
RESET_POLICY = ResetPolicy("reset")
REUSE_POLICY = ReusePolicy("reuse")
BY_NAME: dict[str, Pretraining] = {p.name: p for p in (NO_PRETRAINING, RESET_POLICY, REUSE_POLICY)}
