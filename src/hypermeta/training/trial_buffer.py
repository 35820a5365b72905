"""Completed trials for the ELBO: a ring buffer filled from rollouts, inside the program.

Rollouts need not align with trials (a trial may span rollouts, and episodes may end
early), so each environment's running trial is assembled step by step in `running`;
when a trial ends it is copied into the ring. `running` also lets the learner
re-encode the unfinished trials with the freshly trained encoder (the reference's
`encode_running_trajectory`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from hypermeta.envs.base import Array, PRNGKey
from hypermeta.networks.encoder import EncoderInputs


@struct.dataclass
class Trials:
    """N trials padded to L steps; step t is (obs_t, a_t, r_t, next_obs_t)."""

    obs: Array  # (N, L, obs_dim) encoder observations (with the done bit)
    action: Array  # (N, L, action_features)
    reward: Array  # (N, L) raw rewards
    next_obs: Array  # (N, L, next_obs_dim)
    cell: Array  # (N, L) int32
    cell_hit: Array  # (N, L) bool
    task: Array  # (N, task_dim)
    length: Array  # (N,) int32 valid steps

    @staticmethod
    def zeros(n: int, length: int, obs_dim: int, action_dim: int, next_obs_dim: int, task_dim: int) -> Trials:
        return Trials(
            obs=jnp.zeros((n, length, obs_dim)), action=jnp.zeros((n, length, action_dim)),
            reward=jnp.zeros((n, length)), next_obs=jnp.zeros((n, length, next_obs_dim)),
            cell=jnp.zeros((n, length), jnp.int32), cell_hit=jnp.zeros((n, length), bool),
            task=jnp.zeros((n, task_dim)), length=jnp.zeros((n,), jnp.int32),
        )

    def mask(self) -> Array:
        """(N, L) bool: the step is part of the trial."""
        return jnp.arange(self.reward.shape[1])[None, :] < self.length[:, None]

    def encoder_inputs(self) -> EncoderInputs:
        """Time-major (L, N) inputs as the encoder reads them; each trial starts at step 0."""
        prev_action = jnp.concatenate([jnp.zeros_like(self.action[:, :1]), self.action[:, :-1]], axis=1)
        prev_reward = jnp.concatenate([jnp.zeros_like(self.reward[:, :1]), self.reward[:, :-1]], axis=1)
        reset = jnp.broadcast_to(jnp.arange(self.reward.shape[1])[None, :] == 0, self.reward.shape)
        return EncoderInputs(*(jnp.swapaxes(x, 0, 1) for x in (prev_action, prev_reward, self.obs, reset)))


@struct.dataclass
class TrialBuffer:
    trials: Trials  # (capacity, L, ...) ring
    size: Array  # int32 filled rows
    head: Array  # int32 next row to write
    running: Trials  # (num_envs, L, ...) the trial in progress of every environment

    @staticmethod
    def create(capacity: int, num_envs: int, length: int, obs_dim: int, action_dim: int, next_obs_dim: int,
               task_dim: int) -> TrialBuffer:
        if capacity < num_envs:
            raise ValueError(f"the trial buffer ({capacity}) must hold at least one trial per env ({num_envs})")
        dims = (length, obs_dim, action_dim, next_obs_dim, task_dim)
        return TrialBuffer(Trials.zeros(capacity, *dims), jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32),
                           Trials.zeros(num_envs, *dims))

    @property
    def capacity(self) -> int:
        return self.trials.length.shape[0]

    def add(self, obs: Array, action: Array, reward: Array, next_obs: Array, cell: Array, cell_hit: Array,
            task: Array, done: Array) -> TrialBuffer:
        """Append (T, E) steps; trials that end (`done`) go into the ring."""
        num_envs = reward.shape[1]
        envs = jnp.arange(num_envs)

        def step(buf: TrialBuffer, x):
            o, a, r, no, c, h, tk, d = x
            run, pos = buf.running, buf.running.length
            run = Trials(
                obs=run.obs.at[envs, pos].set(o, mode="drop"), action=run.action.at[envs, pos].set(a, mode="drop"),
                reward=run.reward.at[envs, pos].set(r, mode="drop"),
                next_obs=run.next_obs.at[envs, pos].set(no, mode="drop"),
                cell=run.cell.at[envs, pos].set(c, mode="drop"), cell_hit=run.cell_hit.at[envs, pos].set(h, mode="drop"),
                task=tk, length=pos + 1,
            )
            finished = d
            rank = jnp.cumsum(finished) - 1
            slot = jnp.where(finished, (buf.head + rank) % buf.capacity, buf.capacity)  # out of range: dropped
            trials = jax.tree.map(lambda ring, new: ring.at[slot].set(new, mode="drop"), buf.trials, run)
            n = jnp.sum(finished, dtype=jnp.int32)
            run = run.replace(length=jnp.where(d, 0, run.length))
            return TrialBuffer(trials, jnp.minimum(buf.size + n, buf.capacity), (buf.head + n) % buf.capacity, run), None

        buf, _ = jax.lax.scan(step, self, (obs, action, reward, next_obs, cell, cell_hit, task, done))
        return buf

    def sample(self, key: PRNGKey, n: int) -> Trials:
        """min(n, size) distinct stored trials, uniformly without replacement (the reference's
        `storage_vae.get_batch`); the other rows have length 0 (nothing while empty)."""
        filled = jnp.arange(self.capacity) < self.size
        # n distinct filled rows: the n largest of independent uniform priorities.
        _, idx = jax.lax.top_k(jnp.where(filled, jax.random.uniform(key, (self.capacity,)), -1.0), n)
        trials = jax.tree.map(lambda x: x[idx], self.trials)
        return trials.replace(length=jnp.where(jnp.arange(n) < self.size, trials.length, 0))
