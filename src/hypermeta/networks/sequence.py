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

from hypermeta.config import ModelConfig
from hypermeta.envs.base import Array
from hypermeta.networks.gru_scan import gru_sequence


def reset_where(reset: Array, carry: Any, initial: Any) -> Any:
    """`initial` where `reset` (per item) else `carry`, for any carry pytree."""
    return jax.tree.map(lambda c, i: jnp.where(reset.reshape(reset.shape + (1,) * (c.ndim - reset.ndim)), i, c),
                        carry, initial)


class SequenceModel(nn.Module):
    """The interface (see the module docstring); subclasses define `from_config`,
    `initial_carry`, `step` and `features` (the width of their output)."""

    parallel = False
    """True where the model runs whole sequences itself (`sequence` is a parallel form, or
    a scan with its own backward pass); False: the encoder scans its step."""

    @classmethod
    def from_config(cls, model: ModelConfig, trial_steps: int, **kwargs: Any) -> SequenceModel:
        """The model with the sizes of `model`; `trial_steps` bounds the steps of one trial."""
        raise NotImplementedError

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
    `flax.linen.GRUCell`, held by the module itself. Whole sequences (the PPO replay, the
    ELBO) go through `gru_scan.gru_sequence`: the same steps, a cheaper backward pass."""

    features: int
    parallel = True

    @classmethod
    def from_config(cls, model: ModelConfig, trial_steps: int, **kwargs: Any) -> GRU:
        return cls(model.gru_size, **kwargs)

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

    def sequence(self, carry: Array, xs: Array, resets: Array) -> tuple[Array, Array]:
        if self.is_initializing():  # the parameters do not exist yet: the cell creates them
            return super().sequence(carry, xs, resets)
        return gru_sequence(self.variables["params"], carry, xs, resets)


class LSTM(SequenceModel):
    """An LSTM of `features` units (orthogonal kernels, zero initial state and cell); its
    carry is (cell, hidden) and its output the hidden state."""

    features: int

    @classmethod
    def from_config(cls, model: ModelConfig, trial_steps: int, **kwargs: Any) -> LSTM:
        return cls(model.gru_size, **kwargs)

    def setup(self) -> None:
        orth = nn.initializers.orthogonal()
        self.cell = nn.LSTMCell(self.features, kernel_init=orth, recurrent_kernel_init=orth)
        nn.share_scope(self, self.cell)

    def initial_carry(self, batch_shape: tuple[int, ...]) -> tuple[Array, Array]:
        zeros = jnp.zeros((*batch_shape, self.features), jnp.float32)
        return zeros, zeros

    def step(self, carry: tuple[Array, Array], x: Array) -> tuple[tuple[Array, Array], Array]:
        return self.cell(carry, x)

