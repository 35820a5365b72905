"""Environments stepped in Python (gymnasium), trained by the same learner as the JAX ones.

An environment that cannot be jitted (Meta-World; your own simulator) plugs in as a
*task env*: a `gymnasium.Env` with one extra method and one attribute,

    env.sample_task(rng)          # draw the next trial's task with the numpy Generator rng
    env.task                      # the current task vector c_M, float32 (task_dim,)
    obs, info = env.reset()       # start an episode of the current task
    obs, reward, terminated, truncated, info = env.step(action)   # info may hold "success" (reports_success)

`TrialEnv` turns a task env into the same auto-resetting stream of trials that
`hypermeta.envs.trial.TrialWrapper` makes of a JAX environment: K episodes per task,
the MDP reset with the same task at every episode end (the returned observation is the
new episode's first one), a done bit appended when K > 1, and after the K-th episode a
new task and the first observation of the next trial. The trial end is reported as
`info["trial_done"]`; `terminated`/`truncated` stay False, so a gymnasium vector env never
auto-resets (and its autoreset mode does not matter): the stream never stops.

A `HostEnvironment` declares sizes and spaces like `Environment` and builds task envs;
`make_vector_env` vectorises `TrialEnv`s with gymnasium's `SyncVectorEnv` (default) or
`AsyncVectorEnv` (one process per environment). `hypermeta.training.collectors.host_collector` trains on them.
"""

from __future__ import annotations

import abc
import functools
import os
import signal
from dataclasses import dataclass
from typing import Any, Literal

import gymnasium
import jax
import numpy as np

from hypermeta.envs.base import Box, Discrete, Environment, EnvironmentBase, Space
from hypermeta.envs.trial import trial_rule, with_done_bit

VectorStrategy = Literal["sync", "async"]


def gym_space(space: Space) -> gymnasium.spaces.Space:
    """The gymnasium space of one of our spaces."""
    if isinstance(space, Discrete):
        return gymnasium.spaces.Discrete(space.n)
    return gymnasium.spaces.Box(space.low, space.high, space.shape, np.float32)


class HostEnvironment(EnvironmentBase):
    """A meta-RL environment stepped in Python through gymnasium task envs."""

    #: Task sets evaluated separately; training samples from the first. Each gets its own
    #: metrics.csv columns (the first unprefixed, the others prefixed "<split>_").
    splits: tuple[str, ...] = ("train",)
    #: Whether the task envs report `info["success"]` (Meta-World does): only then do
    #: metrics.csv and evaluations get success columns (an environment without a notion of
    #: success would otherwise show a success rate of 0).
    reports_success: bool = False

    @abc.abstractmethod
    def make_task_env(self, split: str, evaluation_index: int | None = None) -> gymnasium.Env:
        """A task env drawing tasks from `split`.

        `evaluation_index`: None for a training env; for the i-th evaluation env, i, so that
        an environment with task classes can spread the evaluation trials evenly over them.
        Called in the main process: it must be cheap and picklable (AsyncVectorEnv sends it
        to a worker), so build simulators lazily, on the first task.
        """


class TrialEnv(gymnasium.Env):
    """K episodes of one task per trial, as an endless stream; see the module docstring.

    Every step's info holds `task` (the task of the step), `episode` (its episode index),
    `next_obs` (the MDP's observation after the step, before any reset, with the done bit
    of this step's episode end where K > 1, as TrialWrapper), `episode_done`, `trial_done`, `timeout` (the trial ended at a time limit), `next_episode` and `next_task` (the episode
    index and the task of the following step) and
    `success` (the task env's `info["success"]`, else 0).
    """

    def __init__(self, env: gymnasium.Env, episodes_per_trial: int):
        if episodes_per_trial < 1:
            raise ValueError(f"episodes per trial must be >= 1, got {episodes_per_trial}")
        self.env = env
        self.episodes_per_trial = episodes_per_trial
        space = env.observation_space
        extra = 1 if episodes_per_trial > 1 else 0
        self.observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (space.shape[0] + extra,), np.float32)
        self.action_space = env.action_space
        self._episode = 0

    def _with_bit(self, obs: np.ndarray, bit: bool) -> np.ndarray:
        return with_done_bit(np.asarray(obs, np.float32), np.asarray(bit), self.episodes_per_trial, xp=np)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        """A new trial: a new task and its first episode. `seed` seeds the task draws."""
        super().reset(seed=seed)
        self._episode = 0
        self.env.sample_task(self.np_random)
        obs, _ = self.env.reset(seed=seed)
        return self._with_bit(obs, False), {"task": np.asarray(self.env.task, np.float32)}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        obs, reward, terminated, truncated, env_info = self.env.step(action)
        episode_done = bool(terminated or truncated)
        info = {"task": np.asarray(self.env.task, np.float32), "episode": self._episode,
                "next_obs": self._with_bit(obs, episode_done), "success": float(env_info.get("success", 0.0))}
        # TrialWrapper's rule; a time limit is gymnasium's `truncated` (not `terminated`).
        episode, trial_done, done_bit, timeout = (v.item() for v in trial_rule(
            np.int32(self._episode), np.bool_(episode_done), np.bool_(truncated and not terminated),
            self.episodes_per_trial, xp=np))
        self._episode = episode
        if trial_done:
            self.env.sample_task(self.np_random)
        if episode_done:
            obs, _ = self.env.reset()
        info.update(episode_done=episode_done, trial_done=trial_done, timeout=timeout, next_episode=episode,
                    next_task=np.asarray(self.env.task, np.float32))
        return self._with_bit(obs, done_bit), float(reward), False, False, info

    def close(self) -> None:
        self.env.close()


def make_vector_env(env: HostEnvironment, split: str, num_envs: int, strategy: VectorStrategy = "sync",
                    evaluation: bool = False) -> gymnasium.vector.VectorEnv:
    """`num_envs` trial streams of `split` in a gymnasium vector env.

    `evaluation`: the i-th env is built with evaluation_index i (see `HostEnvironment`).
    """
    if split not in env.splits:
        raise ValueError(f"unknown split {split!r}; this environment has: {', '.join(env.splits)}")
    if strategy not in ("sync", "async"):
        raise ValueError(f"unknown vector strategy {strategy!r}; allowed: 'sync', 'async'")
    make = TrialEnv if strategy == "sync" else _worker_trial_env
    fns = [functools.partial(make, env.make_task_env(split, i if evaluation else None), env.episodes_per_trial)
           for i in range(num_envs)]
    if strategy == "sync":
        return gymnasium.vector.SyncVectorEnv(fns)
    # Workers are spawned, not forked (forking a process that runs JAX's threads can
    # deadlock), and see only the CPU: unpickling an env imports hypermeta and so JAX, and
    # on a GPU machine every worker would otherwise open its own GPU client.
    saved = os.environ.get("JAX_PLATFORMS")
    os.environ["JAX_PLATFORMS"] = "cpu"
    try:
        return gymnasium.vector.AsyncVectorEnv(fns, context="spawn")
    finally:
        if saved is None:
            del os.environ["JAX_PLATFORMS"]
        else:
            os.environ["JAX_PLATFORMS"] = saved


def _worker_trial_env(task_env: gymnasium.Env, episodes_per_trial: int) -> TrialEnv:
    """A TrialEnv in an AsyncVectorEnv worker. The worker ignores Ctrl-C: the main process
    turns it into a stop at the next chunk boundary and still needs its workers then."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    return TrialEnv(task_env, episodes_per_trial)


class JaxTaskEnv(gymnasium.Env):
    """A JAX `Environment` as a task env: the host path on an environment whose JAX path is
    known (the host-vs-JAX equality test, the collector's overhead in benchmarks)."""

    def __init__(self, env: Environment):
        self.env = env
        self.observation_space = gym_space(env.observation_space)
        self.action_space = gym_space(env.action_space)
        self._key = np.zeros((2,), np.uint32)  # a PRNGKey; numpy so the env pickles
        self._task = np.zeros((env.task_dim,), np.float32)
        self._state = None

    @functools.cached_property
    def _jitted(self) -> tuple:
        return jax.jit(self.env.sample_task), jax.jit(self.env.reset), jax.jit(self.env.step)

    @property
    def task(self) -> np.ndarray:
        return self._task

    def _next_key(self) -> jax.Array:
        key, sub = jax.random.split(self._key)
        self._key = np.asarray(key)
        return sub

    def sample_task(self, rng: np.random.Generator) -> None:
        self._task = np.asarray(self._jitted[0](jax.random.PRNGKey(rng.integers(2**31))))

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        if seed is not None:
            self._key = np.asarray(jax.random.PRNGKey(seed))
        obs, self._state = self._jitted[1](self._next_key(), self._task)
        return np.asarray(obs), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        obs, self._state, reward, done, info = self._jitted[2](self._next_key(), self._state, np.asarray(action), self._task)
        # gymnasium's convention: an episode ended by its time limit is truncated, not terminated.
        timeout = bool(info.get("timeout", False))
        return np.asarray(obs), float(reward), bool(done) and not timeout, timeout, {}


@dataclass(frozen=True)
class JaxOnHost(HostEnvironment):
    """Any JAX `Environment` trained through the host collector (see `JaxTaskEnv`)."""

    env: Environment

    @property
    def episodes_per_trial(self) -> int:  # type: ignore[override]
        return self.env.episodes_per_trial

    @property
    def max_episode_steps(self) -> int:  # type: ignore[override]
        return self.env.max_episode_steps

    @property
    def observation_space(self) -> Box:
        return self.env.observation_space

    @property
    def action_space(self) -> Space:
        return self.env.action_space

    @property
    def task_dim(self) -> int:
        return self.env.task_dim

    def make_task_env(self, split: str, evaluation_index: int | None = None) -> gymnasium.Env:
        return JaxTaskEnv(self.env)
