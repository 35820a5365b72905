"""The functional environment API every hypermeta environment implements.

An environment is a frozen dataclass of static settings; all dynamic data (the
MDP state and the task) is passed in and returned explicitly, so `reset` and
`step` are pure functions that can be jitted, vmapped and scanned. Every random
draw comes from the key passed in.

    task = env.sample_task(key)                       # c_M, a float vector
    obs, state = env.reset(key, task)
    obs, state, reward, done, info = env.step(key, state, action, task)

`done` marks the end of an *episode*; trials (meta-episodes of K episodes with
one task) are built on top of this by `hypermeta.envs.trial.TrialWrapper`.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax

from hypermeta.errors import UsageError

Array = jax.Array
PRNGKey = jax.Array


@dataclass(frozen=True)
class Discrete:
    """`n` actions, represented as an int32 scalar in [0, n)."""

    n: int

    @property
    def shape(self) -> tuple[int, ...]:
        return ()

    def sample(self, key: PRNGKey) -> Array:
        return jax.random.randint(key, (), 0, self.n)


@dataclass(frozen=True)
class Box:
    """A float vector with per-element bounds (use +-inf for unbounded)."""

    low: float
    high: float
    shape: tuple[int, ...]

    def sample(self, key: PRNGKey) -> Array:
        """Uniform within the bounds; an unbounded side is replaced by +-1."""
        # math, not jnp: the bounds are Python floats and must stay concrete under jit.
        low = self.low if math.isfinite(self.low) else -1.0
        high = self.high if math.isfinite(self.high) else 1.0
        return jax.random.uniform(key, self.shape, minval=low, maxval=high)


Space = Discrete | Box


class EnvironmentBase(abc.ABC):
    """What every meta-RL environment declares, JAX or host-side: sizes and spaces.

    The learner builds its networks from these alone; how the environment is stepped
    (`Environment`: pure JAX; `hypermeta.envs.host.HostEnvironment`: gymnasium, in
    Python) decides which collector feeds it.
    """

    #: Episodes per trial (meta-episode) used by the paper for this environment.
    episodes_per_trial: int
    #: Maximum number of steps of one episode.
    max_episode_steps: int
    #: Cells of a discrete world whose reward a VariBAD decoder predicts per cell (a
    #: Bernoulli "the goal is here" per cell, the reference's Grid decoder). Such an
    #: environment reports `info["cell"]` (int32, the agent's cell after the step) and
    #: `info["cell_hit"]` (bool, the step earned the goal reward). 0: rewards are regressed.
    num_cells: int = 0
    #: (height, width, channels) of an environment whose observation is a flattened image
    #: (MC-LS); image encoders reshape the observation's first h*w*c values. None: a vector.
    image_shape: tuple[int, int, int] | None = None

    @property
    @abc.abstractmethod
    def observation_space(self) -> Box:
        """Space of the per-step observation (without the trial's done bit)."""

    @property
    @abc.abstractmethod
    def action_space(self) -> Space:
        """Space of the actions."""

    @property
    @abc.abstractmethod
    def task_dim(self) -> int:
        """Length of the task vector c_M."""

    # --- pictures of a policy's trials (`hypermeta eval --render`) -----------------------------

    def prepare_pictures(self) -> None:
        """Start what drawing trials needs (a headless renderer), or say in one line that this
        environment draws none; called before the evaluation runs, so it fails first. (JAX
        environments; a `HostEnvironment`'s trials are filmed by MuJoCo's renderer instead.)"""
        raise UsageError(f"--render: no pictures for {type(self).__name__} environments")

    def draw_trial(self, steps: dict, t: int, beliefs: Any, folder: Path, stem: str, title: str) -> list[Path]:
        """Pictures of trial `t` of an evaluation's record written into `folder` as `stem`.*
        (the environment's own kind: a PNG, a GIF, an MP4); returns their paths.

        `steps`: every step's record, (T, trials, ...), as `JaxCollector.evaluate_trials(record=True)`
        makes it (`active` marks the steps that count); `beliefs`: (T, trials, num_cells) goal
        probabilities of a per-cell reward decoder, else None; `title`: a caption.
        """
        raise UsageError(f"--render: no pictures for {type(self).__name__} environments")


class Environment(EnvironmentBase):
    """Base class of a pure-JAX meta-RL environment (one MDP per task)."""

    @abc.abstractmethod
    def sample_task(self, key: PRNGKey) -> Array:
        """Draw a task c_M (float32 vector of length `task_dim`) from p(M)."""

    @abc.abstractmethod
    def reset(self, key: PRNGKey, task: Array) -> tuple[Array, Any]:
        """Start an episode of the MDP given by `task`; returns (obs, state)."""

    @abc.abstractmethod
    def step(
        self, key: PRNGKey, state: Any, action: Array, task: Array
    ) -> tuple[Array, Any, Array, Array, dict[str, Array]]:
        """Advance one step; returns (obs, state, reward, episode_done, info)."""
