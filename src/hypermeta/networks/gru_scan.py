"""The GRU over a whole sequence, with a hand-written backward pass.

PPO replays the encoder over the whole rollout before every minibatch step (8 replays
per update with the paper's settings), so the GRU's backward pass through time is most
of an RNN update. Autodiff of a `lax.scan` accumulates the weight gradients inside the
reverse loop: every step adds a (256 x 16) @ (16 x 768) outer product to accumulators
carried through the loop. Here the reverse loop computes only the gradients of the
gates' pre-activations; the weight gradients are then one matmul each over all T x B
steps at once (and the input gradients one more). Measured on a 2-core CPU, T=60, B=16,
256 units: forward and backward 11 ms instead of 21 ms, gradients equal to autodiff's
within 1e-6 relative (tests/test_networks.py).

The forward pass is `gru_cell`, the very function the GRU acts with
(`networks.sequence.GRU.step`), so a replay reproduces the latents computed while acting
bit for bit.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from hypermeta.envs.base import Array

GATES = ("ir", "iz", "in", "hr", "hz", "hn")
"""Parameter names: input (i) and hidden (h) kernels of the reset (r), update (z) and
candidate (n) gates, each with a bias as torch's nn.GRU (b_ih and b_hh); a gate without
"bias" has none (flax's GRUCell layout, where only the i-kernels and hn have biases)."""


def _dense(p: dict, x: Array) -> Array:
    """flax.linen.Dense: x @ kernel (+ bias)."""
    y = x @ p["kernel"]
    return y + p["bias"] if "bias" in p else y


def gru_cell(params: dict, h: Array, x: Array) -> tuple[Array, tuple]:
    """One GRU step (torch's nn.GRU equations); returns (new h, what the backward pass
    needs: the step's h, gates r, z, n and the hidden candidate term hn)."""
    r = jax.nn.sigmoid(_dense(params["ir"], x) + _dense(params["hr"], h))
    z = jax.nn.sigmoid(_dense(params["iz"], x) + _dense(params["hz"], h))
    hn = _dense(params["hn"], h)
    n = jnp.tanh(_dense(params["in"], x) + r * hn)
    return (1.0 - z) * n + z * h, (h, r, z, n, hn)


def gru_step(params: dict, h: Array, x: Array, reset: Array) -> tuple[Array, tuple]:
    """`gru_cell` from h zeroed first where `reset` (a trial starts)."""
    return gru_cell(params, jnp.where(reset[..., None], 0.0, h), x)


@jax.custom_vjp
def gru_sequence(params: dict, h0: Array, xs: Array, resets: Array) -> tuple[Array, Array]:
    """T GRU steps over time-major xs (T, B, F) with trial starts `resets` (T, B) from h0 (B, H);
    returns (last h, every h (T, B, H)). `params`: {"ir": {"kernel", "bias"}, ...} (GATES)."""

    def step(h, inputs):
        new, _ = gru_step(params, h, *inputs)
        return new, new

    return jax.lax.scan(step, h0, (xs, resets))


def _forward(params: dict, h0: Array, xs: Array, resets: Array):
    def step(h, inputs):
        new, saved = gru_step(params, h, *inputs)
        return new, (new, saved)

    last, (hs, saved) = jax.lax.scan(step, h0, (xs, resets))
    return (last, hs), (params, xs, resets, saved)


def _backward(residuals, cotangents):
    params, xs, resets, (h_prev, r, z, n, hn) = residuals
    d_last, d_hs = cotangents
    w_hidden = jnp.concatenate([params[g]["kernel"] for g in ("hr", "hz", "hn")], axis=1).T  # (3H, H)

    def step(dh_next, inputs):
        d_out, reset, hp, r, z, n, hn = inputs
        dh = dh_next + d_out
        da_n = dh * (1.0 - z) * (1.0 - n * n)  # through n = tanh(a_n)
        d_hn = da_n * r
        da_r = da_n * hn * r * (1.0 - r)  # through r = sigmoid(a_r)
        da_z = dh * (hp - n) * z * (1.0 - z)  # through z = sigmoid(a_z)
        dhp = dh * z + jnp.concatenate([da_r, da_z, d_hn], axis=-1) @ w_hidden
        return jnp.where(reset[..., None], 0.0, dhp), (da_r, da_z, da_n, d_hn)

    dh0, (da_r, da_z, da_n, d_hn) = jax.lax.scan(step, d_last, (d_hs, resets, h_prev, r, z, n, hn), reverse=True)
    flat = lambda a: a.reshape(-1, a.shape[-1])  # noqa: E731  (T x B rows: one matmul per weight)
    x, hp = flat(xs), flat(h_prev)
    pre = {"ir": da_r, "iz": da_z, "in": da_n, "hr": da_r, "hz": da_z, "hn": d_hn}
    grads = {}
    for gate in GATES:
        g = flat(pre[gate])
        grads[gate] = {"kernel": (x if gate[0] == "i" else hp).T @ g}
        if "bias" in params[gate]:
            grads[gate]["bias"] = g.sum(axis=0)
    w_input = jnp.concatenate([params[g]["kernel"] for g in ("ir", "iz", "in")], axis=1).T  # (3H, F)
    dxs = jnp.concatenate([da_r, da_z, da_n], axis=-1) @ w_input
    return grads, dh0, dxs, None


gru_sequence.defvjp(_forward, _backward)
