"""Point-Goal: a 2-D point robot finds a hidden goal on a half circle (a JAX meta-RL environment).

The meta-RL "point robot" of PEARL and VariBAD, in hypermeta's functional environment API
(`hypermeta.envs.base`, the gymnax style): a frozen dataclass of static settings and pure
`sample_task`, `reset` and `step` functions over an explicit state and task, so the trainer can
jit, vmap and scan them inside one compiled program.

* Task: the goal (x, y), uniform on the upper half of the unit circle.
* Each episode starts at the origin; an action (2 values) moves the robot by 0.1 x action,
  at most 0.1 (longer actions are shortened). The reward is minus the distance to the goal
  after the step. The observation is the robot's own position only, so the goal must be
  inferred from the rewards.
* Episodes of 20 steps, 2 per trial: a good agent homes in on the goal during the first
  episode and walks straight to it in the second.

Train it: `python examples/jax_env/train.py` (Python), or on the command line
`PYTHONPATH=examples/jax_env hypermeta train --env point_goal:make --method rnn-hn`.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
from flax import struct

from hypermeta.envs.base import Array, Box, Environment, PRNGKey

REFERENCE_RETURNS = {"oracle": -9.0, "ignores rewards": -29.9, "standing still": -40.0}
"""Returns per trial drawn on learning curves: straight to the goal in 10 steps, twice (-4.5 per
episode); the best path that ignores the rewards (straight up to (0, 0.79), the point nearest
to the goals on average); never moving (-1 per step)."""


@struct.dataclass
class PointState:
    """What changes during an episode (a pytree: `struct.dataclass` fields are JAX arrays)."""

    pos: Array  # float32 (2,): the robot's position
    t: Array  # int32 (): steps taken in the episode


@dataclass(frozen=True)
class PointGoal(Environment):
    """See the module docstring. Settings are static: changing one compiles a new program."""

    max_episode_steps: int = 20
    episodes_per_trial: int = 2
    step_size: float = 0.1

    @property
    def observation_space(self) -> Box:
        return Box(low=-jnp.inf, high=jnp.inf, shape=(2,))

    @property
    def action_space(self) -> Box:
        return Box(low=-1.0, high=1.0, shape=(2,))  # continuous actions: a Gaussian policy

    @property
    def task_dim(self) -> int:
        return 2  # the goal (x, y): what task-inference methods learn to predict

    def sample_task(self, key: PRNGKey) -> Array:
        angle = jax.random.uniform(key, (), minval=0.0, maxval=jnp.pi)
        return jnp.stack([jnp.cos(angle), jnp.sin(angle)]).astype(jnp.float32)

    def reset(self, key: PRNGKey, task: Array) -> tuple[Array, PointState]:
        state = PointState(pos=jnp.zeros(2, jnp.float32), t=jnp.zeros((), jnp.int32))
        return state.pos, state

    def step(self, key: PRNGKey, state: PointState, action: Array,
             task: Array) -> tuple[Array, PointState, Array, Array, dict[str, Array]]:
        move = action / jnp.maximum(1.0, jnp.linalg.norm(action))  # at most one unit long
        pos = state.pos + self.step_size * move
        reward = -jnp.linalg.norm(pos - task)
        t = state.t + 1
        done = t >= self.max_episode_steps
        # "timeout": this episode ended at its time limit, not in a terminal state (optional;
        # it lets `--ppo.time-limit proper` bootstrap the value at trial ends).
        return pos, PointState(pos=pos, t=t), reward, done, {"timeout": done}


def make() -> PointGoal:
    """The factory the command line names: `--env point_goal:make`."""
    return PointGoal()
