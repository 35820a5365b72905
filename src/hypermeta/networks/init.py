"""Weight initialisers matching the reference implementation's PyTorch defaults.

Flax kernels are laid out (in, out); PyTorch weights are (out, in). All functions
here take flax shapes.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from hypermeta.envs.base import Array, PRNGKey

TANH_GAIN = 5.0 / 3.0


def normc(gain: float = 1.0):
    """Each output unit's incoming weight vector ~ N(0, I), rescaled to L2 norm `gain`."""

    def init(key: PRNGKey, shape: tuple[int, ...], dtype=jnp.float32) -> Array:
        w = jax.random.normal(key, shape, dtype)
        return w * gain / jnp.sqrt(jnp.sum(w**2, axis=0, keepdims=True))

    return init


def torch_default_kernel():
    """PyTorch's nn.Linear weight init: U(+-1/sqrt(fan_in))."""

    def init(key: PRNGKey, shape: tuple[int, ...], dtype=jnp.float32) -> Array:
        bound = 1.0 / jnp.sqrt(shape[0])
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def torch_default_bias(fan_in: int):
    """PyTorch's nn.Linear bias init: U(+-1/sqrt(fan_in))."""

    def init(key: PRNGKey, shape: tuple[int, ...], dtype=jnp.float32) -> Array:
        bound = 1.0 / jnp.sqrt(fan_in)
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def torch_linear(features: int, fan_in: int, name: str) -> nn.Dense:
    """A linear layer initialised like PyTorch's nn.Linear (kernel and bias U(+-1/sqrt(fan_in)))."""
    return nn.Dense(features, kernel_init=torch_default_kernel(), bias_init=torch_default_bias(fan_in), name=name)


def kaiming_uniform_tanh(fan_in: int):
    """kaiming_uniform_ with tanh gain: U(+-(5/3) sqrt(3 / fan_in)), whatever the shape."""

    def init(key: PRNGKey, shape: tuple[int, ...], dtype=jnp.float32) -> Array:
        bound = TANH_GAIN * jnp.sqrt(3.0 / fan_in)
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init
