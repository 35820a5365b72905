"""Ant-Dir: the Ant walking forward or backward (or, as in the authors' code, at +-1 rad).

gymnasium's ant.xml (timestep 0.01, RK4), frame skip 5 (dt 0.05 s), 200 steps,
1 episode per trial. Observation: qpos[2:] (13) and qvel (14) = 27. The task is
+1 or -1 (1/2 each). With `directions="forward-backward"` (the paper's text, the
default) it is the sign of the walking direction along x; with `"angle"` (the
authors' code) it is an angle in radians, so the two directions are +-57 degrees
and share their +x component.

reward = velocity of the torso along the direction
         - 0.5 |a|^2 - 0.5e-3 |clip(cfrc_ext, -1, 1)|^2 + 1,

with a the raw action (the physics gets it clipped to [-1, 1], the cost does
not, as in the authors' ant_dir.py; see mjx_env).

The torso's velocity is the change of the free joint's xy (qpos[:2], the torso
frame's position) over the env step. The contact forces `cfrc_ext` are filled
only by the post-constraint recursive Newton-Euler pass in MuJoCo >= 2.0 (MuJoCo
1.50, which the paper used, always ran it); here they are the forces of the
state after the step: one extra `forward` pass, then that pass, in either physics
backend (`MjxEnv.contact_forces`; after an RK4 step MJX's contacts and body
positions are those of an intermediate RK4 stage, unlike C MuJoCo's; the extra
pass makes both the same, measured in tests/test_mujoco.py). The episode ends
when the torso's height leaves [0.2, 1.0] or the state is not finite.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import jax.numpy as jnp

from hypermeta.envs.base import Array, PRNGKey
from hypermeta.envs.mjx_env import MjxEnv, MjxState, control_cost, sample_sign

CONTROL_COST = 0.5
CONTACT_COST = 0.5e-3
SURVIVE_REWARD = 1.0
HEALTHY_Z = (0.2, 1.0)


@dataclass(frozen=True)
class AntDir(MjxEnv):
    """Ant-Dir; see the module docstring."""

    directions: Literal["forward-backward", "angle"] = "forward-backward"
    max_episode_steps: int = 200
    episodes_per_trial: int = 1

    xml = "ant.xml"
    frame_skip = 5
    contact_forces = True
    c_threads = 2  # its physics is costly enough to split over two threads (MjxEnv.c_threads)

    def __post_init__(self) -> None:
        if self.directions not in ("forward-backward", "angle"):
            raise ValueError(f"unknown Ant-Dir directions {self.directions!r}; allowed: 'forward-backward', 'angle'")

    @property
    def obs_dim(self) -> int:
        return 27

    @property
    def task_dim(self) -> int:
        return 1

    def sample_task(self, key: PRNGKey) -> Array:
        return sample_sign(key)

    def direction(self, task: Array) -> Array:
        """Unit xy vector the ant is rewarded for moving along."""
        if self.directions == "angle":
            return jnp.stack([jnp.cos(task[0]), jnp.sin(task[0])])
        return jnp.stack([task[0], jnp.zeros_like(task[0])])

    def observation(self, data, model) -> Array:
        return jnp.concatenate([data.qpos[2:], data.qvel]).astype(jnp.float32)

    def step(
        self, key: PRNGKey, state: MjxState, action: Array, task: Array
    ) -> tuple[Array, MjxState, Array, Array, dict[str, Array]]:
        data, model = self.physics_step(state, action, task)  # with the contact forces (contact_forces)
        velocity = (data.qpos[:2] - state.qpos[:2]) / self.dt
        forward_reward = jnp.dot(velocity, self.direction(task))
        cost = control_cost(CONTROL_COST, action)  # the raw action, not the clipped one
        contact_cost = CONTACT_COST * jnp.sum(jnp.square(jnp.clip(data.cfrc_ext, -1.0, 1.0)))
        reward = forward_reward - cost - contact_cost + SURVIVE_REWARD
        info = {"velocity": forward_reward, "control_cost": cost, "contact_cost": contact_cost}
        return self.finish(data, model, state, reward, healthy(data.qpos), info)


def healthy(qpos: Array) -> Array:
    """The Ant is healthy while its torso's height is within [0.2, 1.0]."""
    return (qpos[2] >= HEALTHY_Z[0]) & (qpos[2] <= HEALTHY_Z[1])
