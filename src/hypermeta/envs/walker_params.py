"""Walker with 65 random physics parameters (the rand_param_envs Walker2d of the paper).

gymnasium's walker2d.xml (the original one, whose left foot has friction 1.9 as
in the authors' MuJoCo 1.31 model; walker2d_v5.xml changed it), RK4 with
timestep 0.004 and frame skip 4 (dt 0.016 s), 200 steps, 2 episodes per trial.
Observation: qpos[1:] (8) and clip(qvel, -10, 10) (9) = 17.
reward = v_x + 1 - 1e-3 |a|^2 (a: the raw action; the physics gets it clipped
to [-1, 1], as in the authors' walker2d_rand_params.py, see mjx_env); the
episode ends unless 0.8 < height < 2 and |torso angle| < 1.

The task is 65 absolute physics values, in the authors' order: body_mass (8),
body_inertia (8 x 3), dof_damping (9), geom_friction (8 x 3). Each element is
its default times 1.5**U(-3, 3) (damping: 1.3**U(-3, 3)), drawn independently.
`model_for(task)` writes them into the MJX model, so a vmapped batch of envs is a
batch of models; the C backend writes each env's values into its MjModel before
stepping that env (`hypermeta.envs.mujoco_c`).

Derived constants (body_invweight0, dof_invweight0, used by the constraint
solver's regularisation) are *not* recomputed after the change: MJX has no
`mj_setConst`, recomputing on the host would take task sampling out of the
compiled program, and the authors' mujoco-py 0.5.7 wrote the same fields
directly too. The C backend does the same (no `mj_setConst`), so both backends
simulate the same model. Measured (benchmarks/mjx_physics.py): one-step qpos differences
of ~1e-3 (contact softness), no change in random-action returns; see
docs/results/mujoco-cpu/README.md ("Walker's derived constants").
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from hypermeta.envs.base import Array, PRNGKey
from hypermeta.envs.mjx_env import MjxEnv, MjxState, control_cost

CONTROL_COST = 1e-3
ALIVE_BONUS = 1.0
LOG_SCALE_LIMIT = 3.0
MASS_BASE, DAMPING_BASE = 1.5, 1.3  # inertia and friction use 1.5 as the mass does


@dataclass(frozen=True)
class WalkerParams(MjxEnv):
    """Walker2d whose task is its physics; see the module docstring."""

    max_episode_steps: int = 200
    episodes_per_trial: int = 2

    xml = "walker2d.xml"
    frame_skip = 4
    timestep = 0.004
    integrator = "RK4"
    reset_noise = 5e-3
    qvel_noise = "uniform"
    c_threads = 2  # its physics is costly enough to split over two threads (MjxEnv.c_threads)

    @property
    def obs_dim(self) -> int:
        return 17

    @property
    def _defaults(self) -> list[Array]:
        m = self.models[0]
        return [m.body_mass, m.body_inertia, m.dof_damping, m.geom_friction]

    @property
    def task_dim(self) -> int:
        return sum(int(v.size) for v in self._defaults)

    def sample_task(self, key: PRNGKey) -> Array:
        bases = [MASS_BASE, MASS_BASE, DAMPING_BASE, MASS_BASE]
        keys = jax.random.split(key, len(bases))
        values = []
        for k, base, default in zip(keys, bases, self._defaults, strict=True):
            exponent = jax.random.uniform(k, default.shape, minval=-LOG_SCALE_LIMIT, maxval=LOG_SCALE_LIMIT)
            values.append((jnp.asarray(default) * base**exponent).ravel())
        return jnp.concatenate(values).astype(jnp.float32)

    def split_task(self, task: Array) -> dict[str, Array]:
        """The task vector as the model fields it sets."""
        names = ["body_mass", "body_inertia", "dof_damping", "geom_friction"]
        out, start = {}, 0
        for name, default in zip(names, self._defaults, strict=True):
            out[name] = task[start:start + default.size].reshape(default.shape)
            start += default.size
        return out

    def model_fields(self, task: Array) -> dict[str, Array]:
        """The task's 65 values, written into the MJX model (`model_for`) or, on the C
        backend, into the stepper's own MjModel before each environment's step."""
        return self.split_task(task)

    def observation(self, data, model) -> Array:
        return jnp.concatenate([data.qpos[1:], jnp.clip(data.qvel, -10.0, 10.0)]).astype(jnp.float32)

    def step(
        self, key: PRNGKey, state: MjxState, action: Array, task: Array
    ) -> tuple[Array, MjxState, Array, Array, dict[str, Array]]:
        data, model = self.physics_step(state, action, task)
        velocity = (data.qpos[0] - state.qpos[0]) / self.dt
        cost = control_cost(CONTROL_COST, action)  # the raw action, not the clipped one
        reward = velocity + ALIVE_BONUS - cost
        info = {"velocity": velocity, "control_cost": cost}
        return self.finish(data, model, state, reward, healthy(data.qpos), info)


def healthy(qpos: Array) -> Array:
    """The Walker is healthy while 0.8 < height < 2 and |torso angle| < 1."""
    height, angle = qpos[1], qpos[2]
    return (height > 0.8) & (height < 2.0) & (angle > -1.0) & (angle < 1.0)
