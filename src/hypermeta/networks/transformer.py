"""A causal transformer over the current trial: pre-norm blocks, rotary positions within
the trial, attention to at most `window` steps of the trial (the step itself included).

    h = Linear(x_t)
    h = h + Attention(LayerNorm(h))     keys/values of the trial's last `window` steps
    h = h + MLP(LayerNorm(h))           4x wide, GELU          (x `layers`)
    y_t = LayerNorm(h)

Trial semantics: a step attends only to steps of its own trial (a trial start forgets
everything), and positions count from the trial's first step, so a trial that spans two
rollouts is seen exactly as one that does not. Acting carries a key/value cache of the last
`window` steps of every layer (oldest first, zeros where the trial has fewer steps) and the
step's position in its trial. The parallel form (`sequence`, for the PPO replay and the
ELBO) attends over [cache, the T new steps] with a mask built from trial starts, and
returns the cache acting would hold after the T steps; it equals T single steps up to
float rounding (the softmax sums in another order).
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from hypermeta.config import TransformerConfig
from hypermeta.envs.base import Array
from hypermeta.networks.sequence import SequenceModel

Carry = dict[str, Array]  # "k", "v": (..., layers, window, features); "pos": (...,) int32


def rotary(x: Array, pos: Array) -> Array:
    """Rotary position embedding of x (..., heads, head_dim) at integer positions pos (...)."""
    half = x.shape[-1] // 2
    freq = 10000.0 ** (-jnp.arange(half, dtype=jnp.float32) / half)
    angle = pos.astype(jnp.float32)[..., None, None] * freq
    x1, x2 = x[..., :half], x[..., half:]
    cos, sin = jnp.cos(angle), jnp.sin(angle)
    return jnp.concatenate([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1)


def _softmax_attend(q: Array, k: Array, v: Array, mask: Array) -> Array:
    """Attention of queries (..., Q, H, D) over keys/values (..., K, H, D) with mask (..., Q, K)."""
    scores = jnp.einsum("...qhd,...khd->...hqk", q, k) / math.sqrt(q.shape[-1])
    scores = jnp.where(mask[..., None, :, :], scores, jnp.finfo(scores.dtype).min)
    return jnp.einsum("...hqk,...khd->...qhd", jax.nn.softmax(scores, axis=-1), v)


class Transformer(SequenceModel):
    """`layers` pre-norm blocks of width `features` with `heads` heads over a `window`."""

    features: int
    layers: int
    heads: int
    window: int

    parallel = True

    @classmethod
    def from_config(cls, config: TransformerConfig, trial_steps: int, **kwargs: Any) -> Transformer:
        return cls(config.dim, config.layers, config.heads, config.window or trial_steps, **kwargs)

    def setup(self) -> None:
        d = self.features
        self.input = nn.Dense(d)
        self.attn_norms = [nn.LayerNorm() for _ in range(self.layers)]
        self.qkv = [nn.Dense(3 * d) for _ in range(self.layers)]
        self.attn_out = [nn.Dense(d) for _ in range(self.layers)]
        self.mlp_norms = [nn.LayerNorm() for _ in range(self.layers)]
        self.mlp_in = [nn.Dense(4 * d) for _ in range(self.layers)]
        self.mlp_out = [nn.Dense(d) for _ in range(self.layers)]
        self.final_norm = nn.LayerNorm()

    def initial_carry(self, batch_shape: tuple[int, ...]) -> Carry:
        zeros = jnp.zeros((*batch_shape, self.layers, self.window, self.features), jnp.float32)
        return {"k": zeros, "v": zeros, "pos": jnp.zeros(batch_shape, jnp.int32)}

    def _heads(self, x: Array) -> Array:
        return x.reshape(*x.shape[:-1], self.heads, self.features // self.heads)

    def _qkv(self, layer: int, h: Array, pos: Array) -> tuple[Array, Array, Array]:
        """Queries and keys rotated to their trial positions, values; (..., heads, head_dim) each."""
        q, k, v = jnp.split(self.qkv[layer](self.attn_norms[layer](h)), 3, axis=-1)
        return rotary(self._heads(q), pos), rotary(self._heads(k), pos), self._heads(v)

    def _mlp(self, layer: int, h: Array) -> Array:
        return h + self.mlp_out[layer](nn.gelu(self.mlp_in[layer](self.mlp_norms[layer](h))))

    def step(self, carry: Carry, x: Array) -> tuple[Carry, Array]:
        pos = carry["pos"]
        seen = jnp.minimum(pos + 1, self.window)  # cached steps of this trial, this one included
        valid = jnp.arange(self.window) >= self.window - seen[..., None]  # (..., W)
        h = self.input(x)
        keys, values = [], []
        for i in range(self.layers):
            q, k, v = self._qkv(i, h, pos)
            # The cache keeps the last `window` steps, oldest first: drop the oldest, append.
            k_all = jnp.concatenate([carry["k"][..., i, 1:, :], k.reshape(*k.shape[:-2], 1, -1)], axis=-2)
            v_all = jnp.concatenate([carry["v"][..., i, 1:, :], v.reshape(*v.shape[:-2], 1, -1)], axis=-2)
            keys.append(k_all)
            values.append(v_all)
            out = _softmax_attend(q[..., None, :, :], self._heads(k_all), self._heads(v_all), valid[..., None, :])
            h = self._mlp(i, h + self.attn_out[i](out[..., 0, :, :].reshape(h.shape)))
        new = {"k": jnp.stack(keys, axis=-3), "v": jnp.stack(values, axis=-3), "pos": pos + 1}
        return new, self.final_norm(h)

    def sequence(self, carry: Carry, xs: Array, resets: Array) -> tuple[Carry, Array]:
        """All T steps at once over time-major inputs (T, ..., F)."""
        batch = xs.shape[1:-1]
        flat = jax.tree.map(lambda c: c.reshape(-1, *c.shape[len(batch):]), carry)
        new, ys = self._sequence(flat, xs.reshape(xs.shape[0], -1, xs.shape[-1]), resets.reshape(resets.shape[0], -1))
        return jax.tree.map(lambda c: c.reshape(*batch, *c.shape[1:]), new), ys.reshape(*xs.shape[:-1], -1)

    def _sequence(self, carry: Carry, xs: Array, resets: Array) -> tuple[Carry, Array]:
        """`sequence` over one batch axis: xs (T, B, F), resets (T, B), carry leaves (B, ...)."""
        steps, w = xs.shape[0], self.window
        time = jnp.arange(steps)[:, None]
        seg = jnp.cumsum(resets, axis=0)  # (T, B): 0 while still in the carry's trial
        last_start = jax.lax.cummax(jnp.where(resets, time, -1), axis=0)
        pos = jnp.where(seg == 0, carry["pos"][None] + time, time - last_start)  # position in the trial
        # Keys in time order: the cache's `window` steps, then the T new ones.
        slot = jnp.arange(w)[:, None]
        key_seg = jnp.concatenate([jnp.zeros((w, seg.shape[1]), seg.dtype), seg])
        key_pos = jnp.concatenate([carry["pos"][None] - w + slot, pos])
        key_time = jnp.concatenate([jnp.broadcast_to(slot - w, (w, seg.shape[1])), jnp.broadcast_to(time, seg.shape)])
        mask = ((key_seg[None] == seg[:, None]) & (key_time[None] <= time[:, None]) & (key_pos[None] >= 0)
                & (key_pos[None] > pos[:, None] - w))  # (T, W + T, B)
        mask = jnp.moveaxis(mask, -1, 0)  # (B, T, W + T)
        keep = (key_seg[steps:] == seg[-1]) & (key_pos[steps:] >= 0)  # (W, B): the new cache's steps
        h = self.input(xs)
        keys, values = [], []
        for i in range(self.layers):
            q, k, v = self._qkv(i, h, pos)  # (T, B, heads, head_dim)
            k_all = jnp.concatenate([jnp.swapaxes(carry["k"][:, i], 0, 1), k.reshape(*k.shape[:2], -1)])
            v_all = jnp.concatenate([jnp.swapaxes(carry["v"][:, i], 0, 1), v.reshape(*v.shape[:2], -1)])
            keys.append(jnp.where(keep[..., None], k_all[steps:], 0.0))
            values.append(jnp.where(keep[..., None], v_all[steps:], 0.0))
            batch_first = lambda a: jnp.swapaxes(a, 0, 1)  # noqa: E731
            out = _softmax_attend(batch_first(q), batch_first(self._heads(k_all)), batch_first(self._heads(v_all)), mask)
            h = self._mlp(i, h + self.attn_out[i](batch_first(out).reshape(h.shape)))
        new = {"k": jnp.stack([jnp.swapaxes(k, 0, 1) for k in keys], axis=1),
               "v": jnp.stack([jnp.swapaxes(v, 0, 1) for v in values], axis=1), "pos": pos[-1] + 1}
        return new, self.final_norm(h)
