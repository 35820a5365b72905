"""Sequence models: the core of the trajectory encoder, behind one small interface.

A sequence model maps a carry and one input per step to a new carry and one output:

    carry = model.initial_carry(batch_shape)          # the state at a trial start
    carry, y = model(carry, x, reset)                 # one step; `reset` starts a trial first
    carry, ys = model.sequence(carry, xs, resets)     # T steps (time-major), resets inside

`reset` (bool per item) marks an input that starts a new trial: the model forgets
everything before it (the carry returns to `initial_carry`) before processing it.
`sequence` must equal T calls of the step; the default scans the step (`nn.scan`). A
model with a parallel form (attention, linear recurrences) overrides it and sets
`parallel = True`, and the trajectory encoder (`networks.encoder`) then hands it whole
sequences; acting always takes single steps. The PPO replay, the ELBO and the
re-encoding of running trials go through `Agent.encode_sequence`, so a new model is one
class here plus one line in SEQUENCE_MODELS.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from hypermeta.envs.base import Array


def reset_where(reset: Array, carry: Any, initial: Any) -> Any:
    """`initial` where `reset` (per item) else `carry`, for any carry pytree."""
    return jax.tree.map(lambda c, i: jnp.where(reset.reshape(reset.shape + (1,) * (c.ndim - reset.ndim)), i, c),
                        carry, initial)


class SequenceModel(nn.Module):
    """The interface (see the module docstring); subclasses define `initial_carry` and `step`."""

    parallel = False
    """True where `sequence` is not a scan of `step` (a parallel form over the whole sequence)."""

    def initial_carry(self, batch_shape: tuple[int, ...]) -> Any:
        raise NotImplementedError

    def step(self, carry: Any, x: Array) -> tuple[Any, Array]:
        """One step from a carry that already respects trial starts."""
        raise NotImplementedError

    def __call__(self, carry: Any, x: Array, reset: Array) -> tuple[Any, Array]:
        return self.step(reset_where(reset, carry, self.initial_carry(reset.shape)), x)

    def sequence(self, carry: Any, xs: Array, resets: Array) -> tuple[Any, Array]:
        """T steps over time-major inputs (T, B, F) with trial starts `resets` (T, B)."""
        scan = nn.scan(lambda model, c, inputs: model(c, *inputs), variable_broadcast="params",
                       split_rngs={"params": False})
        return scan(self, carry, (xs, resets))


class GRU(SequenceModel):
    """The paper's GRU (orthogonal kernels, zero initial state); its parameters are those of
    `flax.linen.GRUCell`, held by the module itself."""

    features: int

    def setup(self) -> None:
        orth = nn.initializers.orthogonal()
        # `nn.share_scope` keeps the cell's parameters at this module's level (no extra name).
        self.cell = nn.GRUCell(self.features, kernel_init=orth, recurrent_kernel_init=orth)
        nn.share_scope(self, self.cell)

    def initial_carry(self, batch_shape: tuple[int, ...]) -> Array:
        return jnp.zeros((*batch_shape, self.features), jnp.float32)

    def step(self, carry: Array, x: Array) -> tuple[Array, Array]:
        carry, _ = self.cell(carry, x)
        return carry, carry


SEQUENCE_MODELS: dict[str, type[SequenceModel]] = {"gru": GRU}
"""Name -> sequence model (the trajectory encoder uses the GRU, the paper's)."""
