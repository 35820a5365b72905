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
class (a subclass of `SequenceModel`) and its config dataclass, registered in
`networks.sequence_registry.SEQUENCE_MODELS` (this package's) or with
`hypermeta.plugins.register_sequence_model` (yours; or `--model.sequence MODULE:CLASS`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from hypermeta.config import GRUConfig, LSTMConfig
from hypermeta.envs.base import Array
from hypermeta.networks.gru_scan import gru_cell, gru_sequence


def reset_where(reset: Array, carry: Any, initial: Any) -> Any:
    """`initial` where `reset` (per item) else `carry`, for any carry pytree."""
    return jax.tree.map(lambda c, i: jnp.where(reset.reshape(reset.shape + (1,) * (c.ndim - reset.ndim)), i, c),
                        carry, initial)


class SequenceModel(nn.Module):
    """The interface (see the module docstring); subclasses define `initial_carry`, `step`
    and `features` (the width of their output), and `from_config` where their config's
    fields are not their own fields."""

    parallel = False
    """True where the model runs whole sequences itself (`sequence` is a parallel form, or
    a scan with its own backward pass); False: the encoder scans its step."""
    config_class: ClassVar[type | None] = None
    """A plug-in's config dataclass where it is named MODULE:CLASS (`--model.sequence
    pkg.mod:MyModel`; `hypermeta.plugins.register_sequence_model` takes it as `config`).
    None: no settings. This package's models keep theirs in `hypermeta.config`."""

    @classmethod
    def from_config(cls, config: Any, trial_steps: int, **kwargs: Any) -> SequenceModel:
        """The model with the sizes of `config`, this model's own config dataclass (None: a
        model registered without one); `trial_steps` bounds the steps of one trial; `kwargs`
        are flax's (`name`, `parent`). Default: the config's fields are the module's fields
        of the same names."""
        fields = {} if config is None else {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
        return cls(**fields, **kwargs)

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


def torch_rnn_params(module: nn.Module, gates: tuple[str, ...], in_features: int, features: int) -> dict:
    """The parameters of a torch-style recurrent cell with the reference's initialisation.

    torch's nn.GRU / nn.LSTM keep every gate's input weights stacked in one matrix
    `weight_ih_l0` (G*H x in) and the hidden ones in `weight_hh_l0` (G*H x H), each with a
    bias; the authors' `init_rnn` (models/aggregator.py) applies `nn.init.orthogonal_` to
    each stacked matrix and sets the biases to 0. So the G*H x H hidden matrix has
    orthonormal columns, and one gate's H x H block has Frobenius norm ~sqrt(H/G)
    (9.24 for the GRU at H = 256), not sqrt(H) as a gate made orthogonal on its own.
    Returns {"i" + g: {"kernel" (in, H), "bias"}, "h" + g: {"kernel" (H, H), "bias"}} in
    flax's (in, out) layout, created as `module`'s parameters; `gates` in torch's order.
    """
    n = len(gates)
    # One key for all gates, so each gate's block is a slice of the same stacked draw (flax
    # also evaluates the init's shapes when applying: any key does there).
    shared = module.make_rng("params") if module.is_initializing() else jax.random.PRNGKey(0)
    fan_in = {"i": in_features, "h": features}

    def init(kind: str, i: int):
        def gate(_key: Array) -> dict[str, Array]:
            # flax's (in, G*H) with orthonormal rows is the transpose of torch's (G*H, in).
            key = jax.random.fold_in(shared, 0 if kind == "i" else 1)
            stacked = nn.initializers.orthogonal()(key, (fan_in[kind], n * features))
            return {"kernel": stacked[:, i * features:(i + 1) * features], "bias": jnp.zeros((features,), jnp.float32)}

        return gate

    return {kind + g: module.param(kind + g, init(kind, i)) for kind in ("i", "h") for i, g in enumerate(gates)}


class GRU(SequenceModel):
    """The paper's GRU: torch's nn.GRU equations and parameters (input and hidden biases),
    initialised as the authors' `init_rnn` (`torch_rnn_params`), zero initial state. Acting
    and whole sequences (the PPO replay, the ELBO) run the same cell, `gru_scan.gru_cell`;
    whole sequences go through `gru_scan.gru_sequence`, with a cheaper backward pass."""

    features: int
    parallel = True

    @classmethod
    def from_config(cls, config: GRUConfig, trial_steps: int, **kwargs: Any) -> GRU:
        return cls(config.size, **kwargs)

    def initial_carry(self, batch_shape: tuple[int, ...]) -> Array:
        return jnp.zeros((*batch_shape, self.features), jnp.float32)

    @nn.compact
    def step(self, carry: Array, x: Array) -> tuple[Array, Array]:
        params = torch_rnn_params(self, ("r", "z", "n"), x.shape[-1], self.features)
        carry, _ = gru_cell(params, carry, x)
        return carry, carry

    def sequence(self, carry: Array, xs: Array, resets: Array) -> tuple[Array, Array]:
        if self.is_initializing():  # the parameters do not exist yet: the step creates them
            return super().sequence(carry, xs, resets)
        return gru_sequence(self.variables["params"], carry, xs, resets)


class LSTM(SequenceModel):
    """An LSTM of `features` units: torch's nn.LSTM equations and parameters (gates i, f, g,
    o; input and hidden biases), initialised as the GRU (`torch_rnn_params`: orthogonal
    stacked matrices, zero biases), zero initial state and cell; its carry is (cell,
    hidden) and its output the hidden state."""

    features: int

    @classmethod
    def from_config(cls, config: LSTMConfig, trial_steps: int, **kwargs: Any) -> LSTM:
        return cls(config.size, **kwargs)

    def initial_carry(self, batch_shape: tuple[int, ...]) -> tuple[Array, Array]:
        zeros = jnp.zeros((*batch_shape, self.features), jnp.float32)
        return zeros, zeros

    @nn.compact
    def step(self, carry: tuple[Array, Array], x: Array) -> tuple[tuple[Array, Array], Array]:
        p = torch_rnn_params(self, ("i", "f", "g", "o"), x.shape[-1], self.features)
        c, h = carry
        pre = {g: x @ p["i" + g]["kernel"] + p["i" + g]["bias"] + h @ p["h" + g]["kernel"] + p["h" + g]["bias"]
               for g in "ifgo"}
        c = jax.nn.sigmoid(pre["f"]) * c + jax.nn.sigmoid(pre["i"]) * jnp.tanh(pre["g"])
        h = jax.nn.sigmoid(pre["o"]) * jnp.tanh(c)
        return (c, h), h
