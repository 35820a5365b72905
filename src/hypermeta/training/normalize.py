"""Running mean / variance (Chan et al.'s parallel update), as a pytree for the train state."""

from __future__ import annotations

import jax.numpy as jnp
from flax import struct

from hypermeta.envs.base import Array


@struct.dataclass
class RunningMeanStd:
    mean: Array
    var: Array
    count: Array

    @staticmethod
    def create(shape: tuple[int, ...] = ()) -> RunningMeanStd:
        # The reference starts from mean 0, var 1 and a tiny count.
        return RunningMeanStd(jnp.zeros(shape, jnp.float32), jnp.ones(shape, jnp.float32), jnp.asarray(1e-4, jnp.float32))

    def update(self, batch: Array) -> RunningMeanStd:
        """Fold in a batch whose leading axes are samples (all but the trailing `mean.ndim` axes)."""
        axes = tuple(range(batch.ndim - self.mean.ndim))
        batch_mean = jnp.mean(batch, axis=axes)
        batch_var = jnp.var(batch, axis=axes)
        batch_count = jnp.asarray(batch.size / max(self.mean.size, 1), jnp.float32)
        delta = batch_mean - self.mean
        total = self.count + batch_count
        mean = self.mean + delta * batch_count / total
        m2 = self.var * self.count + batch_var * batch_count + delta**2 * self.count * batch_count / total
        return RunningMeanStd(mean, m2 / total, total)

    def normalize(self, x: Array, eps: float = 1e-8) -> Array:
        return (x - self.mean) / jnp.sqrt(self.var + eps)
