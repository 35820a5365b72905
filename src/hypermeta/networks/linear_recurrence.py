"""Linear recurrent units (LRU; Orvieto et al. 2023): a diagonal complex linear recurrence
per block, stepped one step at a time when acting and run as a parallel (associative)
scan over whole sequences in the PPO replay and the ELBO.

One block (pre-norm, residual), for each of `layers`:

    u_t = LayerNorm(h_t)
    x_t = lambda * x_{t-1} + gamma * (B u_t)      x: `state` complex units; x_{-1} = 0 at a trial start
    y_t = Re(C x_t) + D * u_t
    h_t = h_t + GLU(GELU(y_t))                    GLU(v) = W1 v * sigmoid(W2 v)

with lambda = exp(-exp(nu) + i exp(theta)) (|lambda| < 1 always) and gamma = sqrt(1 - |lambda|^2),
initialised with |lambda| uniform on the ring [R_MIN, R_MAX] as in the LRU paper.

A trial start makes lambda act as 0 for that step: x_t = gamma * B u_t. The scan's elements
(a_t, b_t) compose as (a1, b1) . (a2, b2) = (a1 a2, a2 b1 + b2), so resets are exact in
the parallel form too; it equals the step-by-step recurrence up to float rounding.

The carry is the real and imaginary parts of every block's state, (..., layers, state) each.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from hypermeta.config import LRUConfig
from hypermeta.envs.base import Array
from hypermeta.networks.sequence import SequenceModel

R_MIN, R_MAX, MAX_PHASE = 0.9, 0.999, 2 * jnp.pi
"""The LRU paper's initial eigenvalue ring and phase range (long memories within a trial)."""


class LRUUnit(nn.Module):
    """The parameters of one linear recurrence (H inputs, N complex states)."""

    features: int
    state: int

    def setup(self) -> None:
        n, h = self.state, self.features
        self.nu_log = self.param("nu_log", _ring_init, (n,))
        self.theta_log = self.param(
            "theta_log", lambda key, shape: jnp.log(MAX_PHASE * jax.random.uniform(key, shape) + 1e-8), (n,))
        # gamma normalises the input so that the state's variance stays near the input's.
        self.gamma_log = self.param("gamma_log", lambda _: jnp.log(jnp.sqrt(1 - jnp.abs(self.lam()) ** 2)))
        normal = nn.initializers.normal
        self.b_re = self.param("b_re", normal(1 / jnp.sqrt(2 * h)), (n, h))
        self.b_im = self.param("b_im", normal(1 / jnp.sqrt(2 * h)), (n, h))
        self.c_re = self.param("c_re", normal(1 / jnp.sqrt(n)), (h, n))
        self.c_im = self.param("c_im", normal(1 / jnp.sqrt(n)), (h, n))
        self.d = self.param("d", nn.initializers.normal(1.0), (h,))

    def lam(self) -> Array:
        """The diagonal of the recurrence (complex, |lambda| < 1)."""
        return jnp.exp(-jnp.exp(self.nu_log) + 1j * jnp.exp(self.theta_log))

    def drive(self, u: Array) -> Array:
        """gamma * B u (complex states) for real inputs u (..., H)."""
        b = (self.b_re + 1j * self.b_im) * jnp.exp(self.gamma_log)[:, None]
        return jnp.einsum("nh,...h->...n", b, u.astype(jnp.complex64))

    def read(self, x: Array, u: Array) -> Array:
        """Re(C x) + D u."""
        return jnp.einsum("hn,...n->...h", self.c_re + 1j * self.c_im, x).real + self.d * u

    def __call__(self, u: Array) -> Array:  # used only to create the parameters
        return self.read(self.drive(u), u)


def _ring_init(key: Array, shape: tuple[int, ...]) -> Array:
    """log(-log|lambda|) for |lambda| uniform in area on the ring [R_MIN, R_MAX]."""
    u = jax.random.uniform(key, shape)
    radius = jnp.sqrt(u * (R_MAX**2 - R_MIN**2) + R_MIN**2)
    return jnp.log(-jnp.log(radius))


def _combine(left: tuple[Array, Array], right: tuple[Array, Array]) -> tuple[Array, Array]:
    """Two affine maps x -> a x + b in sequence (left first)."""
    a1, b1 = left
    a2, b2 = right
    return a1 * a2, a2 * b1 + b2


class LRU(SequenceModel):
    """`layers` LRU blocks of width `features` over a linear input projection."""

    features: int
    state: int
    layers: int

    parallel = True

    @classmethod
    def from_config(cls, config: LRUConfig, trial_steps: int, **kwargs: Any) -> LRU:
        return cls(config.dim, config.state, config.layers, **kwargs)

    def setup(self) -> None:
        self.input = nn.Dense(self.features)
        self.norms = [nn.LayerNorm() for _ in range(self.layers)]
        self.units = [LRUUnit(self.features, self.state) for _ in range(self.layers)]
        self.glus = [nn.Dense(2 * self.features) for _ in range(self.layers)]

    def initial_carry(self, batch_shape: tuple[int, ...]) -> tuple[Array, Array]:
        zeros = jnp.zeros((*batch_shape, self.layers, self.state), jnp.float32)
        return zeros, zeros

    def _glu(self, layer: int, y: Array) -> Array:
        a, b = jnp.split(self.glus[layer](nn.gelu(y)), 2, axis=-1)
        return a * nn.sigmoid(b)

    def step(self, carry: tuple[Array, Array], x: Array) -> tuple[tuple[Array, Array], Array]:
        h = self.input(x)
        state = carry[0] + 1j * carry[1]
        new = []
        for i, unit in enumerate(self.units):
            u = self.norms[i](h)
            s = unit.lam() * state[..., i, :] + unit.drive(u)
            new.append(s)
            h = h + self._glu(i, unit.read(s, u))
        state = jnp.stack(new, axis=-2)
        return (state.real, state.imag), h

    def sequence(self, carry: tuple[Array, Array], xs: Array, resets: Array) -> tuple[tuple[Array, Array], Array]:
        """All T steps at once: one associative scan over time per block."""
        h = self.input(xs)
        state = carry[0] + 1j * carry[1]
        finals = []
        for i, unit in enumerate(self.units):
            u = self.norms[i](h)
            drive = unit.drive(u)  # (T, ..., N)
            a = jnp.where(resets[..., None], 0j, jnp.broadcast_to(unit.lam(), drive.shape)).astype(drive.dtype)
            drive = drive.at[0].add(a[0] * state[..., i, :])  # the carry enters through the first step
            _, states = jax.lax.associative_scan(_combine, (a, drive), axis=0)
            finals.append(states[-1])
            h = h + self._glu(i, unit.read(states, u))
        final = jnp.stack(finals, axis=-2)
        return (final.real, final.imag), h
