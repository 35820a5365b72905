"""The two action distributions of the paper's policies (a few lines each, pytrees)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from hypermeta.envs.base import Array, PRNGKey

# The reference's std floor of 1e-6: log(1e-6) in float32, written out so that importing this
# module starts no JAX backend (a sweep driver plans without one).
LOG_STD_MIN = -13.815510749816895


@struct.dataclass
class Categorical:
    """Discrete actions from unnormalised logits (..., n)."""

    logits: Array

    def sample(self, key: PRNGKey) -> Array:
        return jax.random.categorical(key, self.logits)

    def mode(self) -> Array:
        return jnp.argmax(self.logits, axis=-1)

    def log_prob(self, action: Array) -> Array:
        logp = jax.nn.log_softmax(self.logits)
        return jnp.take_along_axis(logp, action[..., None].astype(jnp.int32), axis=-1)[..., 0]

    def entropy(self) -> Array:
        logp = jax.nn.log_softmax(self.logits)
        return -jnp.sum(jnp.exp(logp) * logp, axis=-1)


@struct.dataclass
class DiagGaussian:
    """Continuous actions; the log-std is a free parameter, not a function of the input."""

    mean: Array
    log_std: Array

    def sample(self, key: PRNGKey) -> Array:
        return self.mean + jnp.exp(self._log_std) * jax.random.normal(key, self.mean.shape)

    def mode(self) -> Array:
        return self.mean

    @property
    def _log_std(self) -> Array:
        return jnp.broadcast_to(jnp.maximum(self.log_std, LOG_STD_MIN), self.mean.shape)

    def log_prob(self, action: Array) -> Array:
        z = (action - self.mean) * jnp.exp(-self._log_std)
        return jnp.sum(-0.5 * z**2 - self._log_std - 0.5 * jnp.log(2 * jnp.pi), axis=-1)

    def entropy(self) -> Array:
        return jnp.sum(self._log_std + 0.5 * jnp.log(2 * jnp.pi * jnp.e), axis=-1)
