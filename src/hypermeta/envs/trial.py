"""Trials (meta-episodes): K episodes of one MDP, the unit meta-RL optimises.

`TrialWrapper` turns any `Environment` into an auto-resetting stream of trials:

* `reset(key)` samples a task c_M and starts the first episode.
* `step(key, state, action)` advances the MDP. When an episode ends inside the
  trial, the MDP is reset with the same task and the returned observation is
  the *new episode's first observation* (the authors' gym path returned the
  stale terminal observation instead, see original-implementation.md 7.4).
  After the K-th episode the trial is over: a new task is sampled and the
  returned observation is the first observation of the next trial.
* When K > 1 a done bit is appended to every observation: 1 on the observation
  that follows the end of an episode inside the trial, 0 otherwise (also 0 on
  the first observation of a trial, where the agent's memory is reset anyway).
* The task vector lives in the state and in `info["task"]` (the task of the
  transition just taken, for task-inference targets); it never enters the
  observation.

The returned `done` is the *trial* end, the only place where returns stop
propagating and where the agent's hidden state is reset. Episode ends inside a
trial are not terminals for the meta-learner (GAE runs through them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from hypermeta.envs.base import Array, Box, EnvironmentBase, PRNGKey, Space


@struct.dataclass
class TrialState:
    """State of a trial: the MDP state, the task and the episode index in [0, K)."""

    env_state: Any
    task: Array
    episode: Array  # int32 ()


def trial_rule(episode: Array, episode_done: Array, timed_out: Array, episodes_per_trial: int,
               xp: Any = jnp) -> tuple[Array, Array, Array, Array]:
    """The trial's bookkeeping after one step, the one rule of JAX trials (`TrialWrapper`) and
    host trials (`hypermeta.envs.host.TrialEnv`); `xp` is jnp or numpy.

    `episode`: the index of the step's episode (int32); `episode_done`: the step ended it;
    `timed_out`: it ended at a time limit, not at a terminal state. Returns (the next step's
    episode index, 0 after a trial end; the trial ended; the done bit of the next observation,
    an episode end inside the trial; the trial ended at a time limit).
    """
    ended = episode + episode_done.astype(episode.dtype)
    trial_done = ended >= episodes_per_trial
    return xp.where(trial_done, 0, ended).astype(episode.dtype), trial_done, episode_done & ~trial_done, trial_done & timed_out


def with_done_bit(obs: Array, bit: Array, episodes_per_trial: int, xp: Any = jnp) -> Array:
    """The observation with the done bit appended where a trial has more than one episode."""
    if episodes_per_trial == 1:
        return obs
    return xp.concatenate([obs, bit.astype(obs.dtype)[None]])


@dataclass(frozen=True)
class TrialWrapper:
    """K episodes per task; see the module docstring for the exact semantics."""

    env: EnvironmentBase
    """The MDPs; `reset`/`step` need a JAX `Environment` (a host environment's trials are
    made by `hypermeta.envs.host.TrialEnv`, and this wrapper only describes its spaces)."""
    episodes_per_trial: int

    def __post_init__(self) -> None:
        if self.episodes_per_trial < 1:
            raise ValueError(f"episodes per trial must be >= 1, got {self.episodes_per_trial}")

    @property
    def has_done_bit(self) -> bool:
        return self.episodes_per_trial > 1

    @property
    def observation_space(self) -> Box:
        space = self.env.observation_space
        extra = 1 if self.has_done_bit else 0
        return Box(low=min(space.low, 0.0), high=max(space.high, 1.0), shape=(space.shape[0] + extra,))

    @property
    def action_space(self) -> Space:
        return self.env.action_space

    @property
    def task_dim(self) -> int:
        return self.env.task_dim

    @property
    def max_trial_steps(self) -> int:
        """Upper bound on the steps of one trial (exact when episodes never end early)."""
        return self.episodes_per_trial * self.env.max_episode_steps

    def reset(self, key: PRNGKey) -> tuple[Array, TrialState]:
        """Sample a task and start the first episode of a new trial."""
        task_key, reset_key = jax.random.split(key)
        task = self.env.sample_task(task_key)
        obs, env_state = self.env.reset(reset_key, task)
        state = TrialState(env_state=env_state, task=task, episode=jnp.zeros((), jnp.int32))
        return with_done_bit(obs, jnp.zeros((), bool), self.episodes_per_trial), state

    def step(
        self, key: PRNGKey, state: TrialState, action: Array
    ) -> tuple[Array, TrialState, Array, Array, dict[str, Array]]:
        """One step; returns (obs, state, reward, trial_done, info).

        info holds the environment's own info, `episode_done` (the step ended an
        episode), `episode` (index of the episode the step belonged to), `task` (the
        task of the step), `timeout` (the step ended the trial at a time limit) and `next_obs` (the MDP's observation after the step, before any
        reset, with the done bit of this step's episode end where K > 1: what a VariBAD
        state decoder reconstructs).
        """
        step_key, reset_key, next_trial_key = jax.random.split(key, 3)
        obs, env_state, reward, episode_done, env_info = self.env.step(step_key, state.env_state, action, state.task)
        next_obs = obs
        # The trial ended at a time limit if it ended where the env reports `info["timeout"]`
        # (an episode ended by its limit, not a terminal state); timeouts inside a trial are not reported.
        episode, trial_done, done_bit, timeout = trial_rule(
            state.episode, episode_done, env_info.get("timeout", jnp.zeros((), bool)), self.episodes_per_trial)

        # Reset the MDP at every episode end; a finished trial also gets a new task.
        new_task = jax.lax.cond(
            trial_done, lambda: self.env.sample_task(next_trial_key), lambda: state.task
        )
        reset_obs, reset_state = self.env.reset(reset_key, new_task)
        obs = jnp.where(episode_done, reset_obs, obs)
        env_state = jax.tree.map(lambda r, s: jnp.where(episode_done, r, s), reset_state, env_state)
        next_state = TrialState(env_state=env_state, task=new_task, episode=episode)
        # next_obs carries the done bit of the episode end (as the reference's VAE states, so a
        # state decoder reconstructs it too): 1 where this step ended an episode.
        info = {**env_info, "episode_done": episode_done, "episode": state.episode, "task": state.task,
                "next_obs": with_done_bit(next_obs, episode_done, self.episodes_per_trial), "timeout": timeout}
        return with_done_bit(obs, done_bit, self.episodes_per_trial), next_state, reward, trial_done, info
