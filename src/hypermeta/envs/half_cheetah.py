"""Cheetah-Dir and Cheetah-Vel: HalfCheetah running in a direction or at a speed.

gymnasium's half_cheetah.xml (timestep 0.01, Euler), frame skip 5 (dt 0.05 s),
200 steps, 1 episode per trial. The observation is qpos[1:] (8), qvel (9) and
the torso's position (3) = 20, as in the authors' code (their `get_body_com` is
the body frame's position, `xpos`). The forward velocity is the change of the
root's x over one environment step.

* Cheetah-Dir: task = direction +1 or -1 (1/2 each);
  reward = direction * v_x - 0.05 |a|^2.
* Cheetah-Vel: task = target velocity ~ U(0, 3);
  reward = -|v_x - v*| - 0.05 |a|^2.

a is the raw action (the physics gets it clipped to [-1, 1], the cost does not;
the authors' half_cheetah_dir.py / half_cheetah_vel.py, see mjx_env).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import jax
import jax.numpy as jnp

from hypermeta.envs.base import Array, PRNGKey
from hypermeta.envs.mjx_env import MjxEnv, MjxState, control_cost, sample_sign

CONTROL_COST = 0.05
MAX_TARGET_VELOCITY = 3.0


@dataclass(frozen=True)
class HalfCheetah(MjxEnv):
    """Cheetah-Dir (`task="direction"`) or Cheetah-Vel (`task="velocity"`)."""

    task: Literal["direction", "velocity"] = "direction"
    max_episode_steps: int = 200
    episodes_per_trial: int = 1

    xml = "half_cheetah.xml"
    frame_skip = 5

    def __post_init__(self) -> None:
        if self.task not in ("direction", "velocity"):
            raise ValueError(f"unknown HalfCheetah task {self.task!r}; allowed: 'direction', 'velocity'")

    @property
    def obs_dim(self) -> int:
        return 20

    @property
    def task_dim(self) -> int:
        return 1

    def sample_task(self, key: PRNGKey) -> Array:
        if self.task == "direction":
            return sample_sign(key)
        return jax.random.uniform(key, (1,), minval=0.0, maxval=MAX_TARGET_VELOCITY)

    def observation(self, data, model) -> Array:
        torso = data.xpos[1]  # body 1 is the torso (body 0 is the world)
        return jnp.concatenate([data.qpos[1:], data.qvel, torso]).astype(jnp.float32)

    def step(
        self, key: PRNGKey, state: MjxState, action: Array, task: Array
    ) -> tuple[Array, MjxState, Array, Array, dict[str, Array]]:
        data, model = self.physics_step(state, action, task)
        velocity = (data.qpos[0] - state.qpos[0]) / self.dt
        cost = control_cost(CONTROL_COST, action)  # the raw action, not the clipped one
        if self.task == "direction":
            reward = task[0] * velocity - cost
        else:
            reward = -jnp.abs(velocity - task[0]) - cost
        info = {"velocity": velocity, "control_cost": cost}
        return self.finish(data, model, state, reward, jnp.ones((), bool), info)
