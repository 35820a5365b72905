"""The three grid-worlds of the paper: Grid-World, Grid-World Show, Grid-World Dense.

A 5x5 grid, start (0, 0) in the bottom-left corner, 15 steps per episode, 4
episodes per trial. The task is the goal (x, y), uniform over the 21 cells that
are neither the start nor one of its three neighbours (0,1), (1,0), (1,1). The
goal is not terminal: every step that ends on the goal gives +1, every other
step -0.1 (Dense: -(Manhattan distance to the goal) / 5). Actions: 0 noop,
1 up, 2 right, 3 down, 4 left, clipped at the walls. The observation is the
agent's (x, y) as floats.

Grid-World Show reveals the goal. `show="episode-start"` (default, the
paper's text) makes the first observation of every episode the goal's
coordinates instead of the agent's position. `show="start-cell"` is what the
authors' code does instead: after any step that leaves the agent on the start
cell (a noop there, or bumping into the left/bottom wall) the observation is
the goal's coordinates; the reset observation is the plain start position.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from hypermeta.envs.base import Array, Box, Discrete, Environment, PRNGKey

# (dx, dy) for noop, up, right, down, left. A numpy constant: a JAX array here would start a
# JAX backend (and take a GPU) in every process that imports the environments, the sweep driver's too.
_MOVES = np.array([[0, 0], [0, 1], [1, 0], [0, -1], [-1, 0]], dtype=np.int32)


@struct.dataclass
class GridState:
    """Agent position and the number of steps taken in the episode."""

    pos: Array  # int32 (2,)
    t: Array  # int32 ()


def goal_cells(size: int = 5) -> Array:
    """All goal cells: every cell except the start and its three neighbours."""
    cells = [(x, y) for x in range(size) for y in range(size) if not (x <= 1 and y <= 1)]
    return jnp.array(cells, dtype=jnp.int32)


@dataclass(frozen=True)
class GridWorld(Environment):
    """Grid-World and its Show / Dense variants (see the module docstring)."""

    size: int = 5
    max_episode_steps: int = 15
    episodes_per_trial: int = 4
    dense: bool = False
    show: Literal["none", "episode-start", "start-cell"] = "none"

    def __post_init__(self) -> None:
        if self.show not in ("none", "episode-start", "start-cell"):
            raise ValueError(
                f"unknown show mode {self.show!r}; allowed: 'none', 'episode-start', 'start-cell'"
            )
        if self.size < 3:
            raise ValueError(f"grid size must be >= 3 (goals exclude a 2x2 corner), got {self.size}")

    @property
    def num_cells(self) -> int:  # type: ignore[override]
        return self.size * self.size

    @property
    def observation_space(self) -> Box:
        return Box(low=0.0, high=float(self.size - 1), shape=(2,))

    @property
    def action_space(self) -> Discrete:
        return Discrete(5)

    @property
    def task_dim(self) -> int:
        return 2

    def sample_task(self, key: PRNGKey) -> Array:
        cells = goal_cells(self.size)
        idx = jax.random.randint(key, (), 0, cells.shape[0])
        return cells[idx].astype(jnp.float32)

    def reset(self, key: PRNGKey, task: Array) -> tuple[Array, GridState]:
        state = GridState(pos=jnp.zeros(2, jnp.int32), t=jnp.zeros((), jnp.int32))
        obs = state.pos.astype(jnp.float32)
        if self.show == "episode-start":
            obs = task.astype(jnp.float32)
        return obs, state

    def step(
        self, key: PRNGKey, state: GridState, action: Array, task: Array
    ) -> tuple[Array, GridState, Array, Array, dict[str, Array]]:
        pos = jnp.clip(state.pos + jnp.asarray(_MOVES)[action], 0, self.size - 1)
        goal = task.astype(jnp.int32)
        on_goal = jnp.all(pos == goal)
        if self.dense:
            off_goal_reward = -jnp.sum(jnp.abs(pos - goal)).astype(jnp.float32) / self.size
        else:
            off_goal_reward = jnp.float32(-0.1)
        reward = jnp.where(on_goal, jnp.float32(1.0), off_goal_reward)
        t = state.t + 1
        done = t >= self.max_episode_steps
        obs = pos.astype(jnp.float32)
        if self.show == "start-cell":
            obs = jnp.where(jnp.all(pos == 0), task.astype(jnp.float32), obs)
        info = {"cell": pos[1] * self.size + pos[0], "cell_hit": on_goal, "timeout": done}
        return obs, GridState(pos=pos, t=t), reward, done, info

    def prepare_pictures(self) -> None:
        """A grid picture needs only matplotlib."""

    def draw_trial(self, steps: dict, t: int, beliefs: Any, folder: Path, stem: str, title: str) -> list[Path]:
        """One PNG: each episode's path on the grid and, with `beliefs`, the goal beliefs at chosen steps."""
        from hypermeta.analysis.behaviour import draw_grid_trial, grid_trial, save

        return [save(folder / f"{stem}.png", draw_grid_trial(grid_trial(self, steps, t, beliefs), title))]
