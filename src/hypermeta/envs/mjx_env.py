"""Shared machinery of the MuJoCo tasks, simulated with MJX (MuJoCo in JAX).

The paper ran its MuJoCo tasks on mujoco-py with MuJoCo 1.50 / 1.31, which no
longer install. Here the same models (the XML files shipped with gymnasium, read
from the installed package, not copied) are stepped by MJX, so a task's `reset`
and `step` are pure JAX like the grid-worlds and the whole rollout stays inside
the compiled training program.

`MjxEnv` holds what every task shares: loading the model once (cached), the
physics settings (frame skip, timestep, integrator, solver iterations), the
reset with the gym-style noise around the initial pose, stepping the physics
`frame_skip` times per action, and the end of a step (time limit, health rule,
non-finite guard). The physics receives the action clipped to [-1, 1] (every
actuator's ctrlrange, which MuJoCo clamps to anyway); the tasks' control costs
are computed on the raw, unclipped action, as in the authors' envs (their
`ctrl_cost` squares the action the policy sampled, and nothing between the
Gaussian policy and `env.step` clips it). So an action outside [-1, 1] moves the
robot no further than +-1 but costs its full square.

Two physics backends step the same tasks (`MjxEnv.physics`): "mjx", MJX inside the
compiled program (fast on GPUs), and "c", MuJoCo's C library through a `jax.pure_callback`
over the batch (`hypermeta.envs.mujoco_c`; ~10x faster than MJX on a CPU, and nothing to
compile). Both return the MuJoCo data fields the tasks read, so observations, rewards and
terminations are one JAX code; the carried state is `MjxState` for both, so checkpoints
do not depend on the backend.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from hypermeta.envs import mujoco_c
from hypermeta.envs.base import Array, Box, Environment, PRNGKey
from hypermeta.errors import UsageError

# Solver settings. The models ship with 100 Newton iterations and 50 line-search steps
# (tolerance 1e-8); MJX runs its solver as a while-loop, so under vmap every env waits for
# the slowest. 4 / 8 is what MuJoCo's own MJX examples use for locomotion: 2-3x faster,
# with one-step differences to the full solver at float32 rounding on all but a few Ant
# contact steps (benchmarks/mjx_physics.py; docs/results/mujoco-cpu/README.md, "Solver budget").
SOLVER_ITERATIONS = 4
LS_ITERATIONS = 8

Physics = Literal["mjx", "c"]
PHYSICS: tuple[str, ...] = ("mjx", "c")


def _require_mujoco() -> tuple[Any, Any]:
    """Import mujoco and mujoco.mjx, or say how to install them."""
    try:
        import mujoco
        from mujoco import mjx
    except ImportError as err:  # pragma: no cover - both are core dependencies
        raise UsageError(
            "the MuJoCo tasks need `mujoco` and `mujoco-mjx` 3.3.0: pip install 'mujoco==3.3.0' 'mujoco-mjx==3.3.0'"
        ) from err
    return mujoco, mjx


def gymnasium_asset(name: str) -> Path:
    """Path of a MuJoCo model file shipped with the installed gymnasium package."""
    spec = importlib.util.find_spec("gymnasium")
    if spec is None or spec.origin is None:
        raise UsageError("the MuJoCo tasks read their model files from gymnasium: pip install 'gymnasium>=1.0'")
    path = Path(spec.origin).parent / "envs" / "mujoco" / "assets" / name
    if not path.exists():
        raise UsageError(f"gymnasium ships no model file {name!r} (looked in {path.parent})")
    return path


@functools.cache
def load_model(
    xml: str, timestep: float | None, integrator: str | None, iterations: int, ls_iterations: int,
    cone: str | None = None,
) -> tuple[Any, Any]:
    """(C MjModel, MJX Model) of gymnasium's `xml` with the given physics options.

    Cached: every env instance with the same settings shares one model. The C model is
    what the equality tests step with the `mujoco` bindings.
    """
    mujoco, mjx = _require_mujoco()
    model = mujoco.MjModel.from_xml_path(str(gymnasium_asset(xml)))
    if timestep is not None:
        model.opt.timestep = timestep
    if integrator is not None:
        model.opt.integrator = getattr(mujoco.mjtIntegrator, f"mjINT_{integrator}")
    if cone is not None:
        model.opt.cone = getattr(mujoco.mjtCone, f"mjCONE_{cone.upper()}")
    model.opt.iterations = iterations
    model.opt.ls_iterations = ls_iterations
    # Concrete arrays even when first called while tracing (the cache outlives the trace).
    with jax.ensure_compile_time_eval():
        return model, mjx.put_model(model)


@struct.dataclass
class MjxState:
    """What carries over between environment steps: the integrator's state, the solver's
    warm start and the steps taken in the episode.

    A full `mjx.Data` is rebuilt from these in each step: it would add ~100 arrays (some
    empty, which checkpoints cannot hold) to the rollout carry for nothing, since
    `mjx.step` recomputes every other field from qpos / qvel.
    """

    qpos: Array
    qvel: Array
    qacc_warmstart: Array
    t: Array  # int32 ()

    @staticmethod
    def of(data: Any, t: Array) -> MjxState:
        return MjxState(qpos=data.qpos, qvel=data.qvel, qacc_warmstart=data.qacc_warmstart, t=t)


def sample_sign(key: PRNGKey) -> Array:
    """+1 or -1 with probability 1/2 each, as a (1,) float32 task vector."""
    return jnp.where(jax.random.bernoulli(key), 1.0, -1.0)[None].astype(jnp.float32)


@dataclass(frozen=True)
class MjxEnv(Environment):
    """Base of the MuJoCo tasks: model, physics settings, reset noise, frame skip.

    Subclasses set the class attributes below and implement `observation`,
    `sample_task`, `task_dim` and `step` (usually via `physics_step`).
    """

    xml = ""
    """Model file name in gymnasium's assets."""
    frame_skip = 5
    timestep = None
    """Physics timestep override in seconds (None: the model file's)."""
    integrator = None
    """Integrator override, "EULER" or "RK4" (None: the model file's)."""
    reset_noise = 0.1
    """qpos += U(-n, n) and qvel += n * N(0, 1) (the gym convention) or U(-n, n) (`qvel_noise`)."""
    qvel_noise = "normal"
    """Distribution of the initial velocities: "normal" (Cheetah, Ant) or "uniform" (Walker)."""
    solver_iterations: int = SOLVER_ITERATIONS
    """Constraint-solver iterations (the model files say 100; see SOLVER_ITERATIONS)."""
    ls_iterations: int = LS_ITERATIONS
    cone: str | None = None
    """Friction-cone override, "pyramidal" or "elliptic" (None: the model file's, pyramidal).
    MJX 3.3's pyramidal contact forces differ from C MuJoCo's at some contact steps, its
    elliptic ones match (docs/environments.md, "MuJoCo tasks on MJX"); the Ant's equality test uses elliptic."""
    physics: Physics = "mjx"
    """Physics backend: "mjx" (MJX in the compiled program) or "c" (MuJoCo's C library via a
    callback, `hypermeta.envs.mujoco_c`). Same model and solver settings, float64 in C and
    float32 in MJX. `make_env(name, physics=...)` sets it ("auto": C on CPUs)."""
    contact_forces = False
    """Whether the task reads `cfrc_ext` (the Ant): the physics step then adds a forward pass
    and the post-constraint Newton-Euler pass that fills it."""
    c_threads = 1
    """Threads the C physics splits a batch over (at most the cores this process may use:
    `mujoco_c.cpu_threads`, a sweep cell's --cell-cpus). A step waits for
    its physics (the rollout is sequential), so the other core is free; but handing a batch
    to threads costs ~0.1 ms: worth it where 16 envs' physics take milliseconds (Ant, Walker:
    2 threads 1.1-1.6x the env steps/s), not for the Cheetah (0.5 ms; 2 threads 2.5x slower).
    docs/results/cpu-speed/mujoco-threads.jsonl."""

    @property
    def models(self) -> tuple[Any, Any]:
        """(C MjModel, MJX Model) with this task's physics options."""
        return load_model(
            self.xml, self.timestep, self.integrator, self.solver_iterations, self.ls_iterations, self.cone
        )

    @property
    def mjx_model(self) -> Any:
        return self.models[1]

    @property
    def dt(self) -> float:
        """Seconds per environment step (timestep x frame_skip)."""
        return float(self.models[0].opt.timestep) * self.frame_skip

    @property
    def action_space(self) -> Box:
        return Box(low=-1.0, high=1.0, shape=(self.models[0].nu,))

    @property
    def observation_space(self) -> Box:
        return Box(low=-np.inf, high=np.inf, shape=(self.obs_dim,))

    @property
    def obs_dim(self) -> int:
        raise NotImplementedError

    def model_fields(self, task: Array) -> dict[str, Array]:
        """Model fields that `task` sets (none unless physics is the task, as Walker's)."""
        return {}

    def model_for(self, task: Array) -> Any:
        """The MJX model of `task` (the same for every task unless physics is the task)."""
        fields = self.model_fields(task)
        return self.mjx_model.replace(**fields) if fields else self.mjx_model

    @property
    def c_stepper(self) -> mujoco_c.CStepper:
        """The C backend's stepper: the same C model as `models`, Walker's fields per env."""
        names = tuple(jax.eval_shape(self.model_fields, jax.ShapeDtypeStruct((self.task_dim,), jnp.float32)))
        threads = mujoco_c.THREADS if mujoco_c.THREADS is not None else min(self.c_threads, mujoco_c.cpu_threads())
        return mujoco_c.stepper(self.models[0], self.frame_skip, self.contact_forces, names, threads)

    def observation(self, data: Any, model: Any) -> Array:
        raise NotImplementedError

    def initial_qpos_qvel(self, key: PRNGKey) -> tuple[Array, Array]:
        """The model's initial pose with the gym-style reset noise."""
        c_model = self.models[0]
        qpos_key, qvel_key = jax.random.split(key)
        n = self.reset_noise
        qpos = jnp.asarray(c_model.qpos0) + jax.random.uniform(qpos_key, (c_model.nq,), minval=-n, maxval=n)
        if self.qvel_noise == "uniform":
            qvel = jax.random.uniform(qvel_key, (c_model.nv,), minval=-n, maxval=n)
        else:
            qvel = n * jax.random.normal(qvel_key, (c_model.nv,))
        return qpos, qvel

    def reset(self, key: PRNGKey, task: Array) -> tuple[Array, MjxState]:
        qpos, qvel = self.initial_qpos_qvel(key)
        if self.physics == "c":
            qpos = mujoco_c.normalize_quaternions(self.models[0], qpos)  # as MJX's kinematics does
            # Only positions (xpos) are computed; dead code unless the observation reads them.
            xpos = self.c_stepper.kinematics(qpos)
            data = mujoco_c.CData(qpos=qpos, qvel=qvel, qacc_warmstart=jnp.zeros_like(qvel), xpos=xpos)
            return self.observation(data, None), MjxState.of(data, jnp.zeros((), jnp.int32))
        _, mjx = _require_mujoco()
        model = self.model_for(task)
        data = mjx.make_data(model).replace(qpos=qpos, qvel=qvel)
        # Positions only: the observation needs body positions, and the first step's
        # `mjx.step` recomputes everything from qpos / qvel anyway.
        data = mjx.kinematics(model, data)
        return self.observation(data, model), MjxState.of(data, jnp.zeros((), jnp.int32))

    def physics_step(self, state: MjxState, action: Array, task: Array) -> tuple[Any, Any]:
        """Apply the action, clipped to the ctrlrange [-1, 1], for `frame_skip` physics steps;
        returns (data, model): an `mjx.Data` and its model, or a `mujoco_c.CData` and None
        (nothing the tasks compute from it reads the model). The clipped action stays in
        here: control costs square the raw action (see the module docstring).

        With `contact_forces`, `cfrc_ext` holds the contact forces of the state after the
        step: one extra forward pass, then the post-constraint Newton-Euler pass (after an
        RK4 step MJX's contacts are those of an intermediate stage, unlike C MuJoCo's; the
        extra pass makes both the same)."""
        ctrl = jnp.clip(action, -1.0, 1.0)
        if self.physics == "c":
            data = self.c_stepper.step(state.qpos, state.qvel, state.qacc_warmstart, ctrl, self.model_fields(task))
            return data, None
        _, mjx = _require_mujoco()
        model = self.model_for(task)
        data = mjx.make_data(model).replace(
            qpos=state.qpos, qvel=state.qvel, qacc_warmstart=state.qacc_warmstart, ctrl=ctrl
        )
        data = jax.lax.fori_loop(0, self.frame_skip, lambda _, d: mjx.step(model, d), data)
        if self.contact_forces:
            data = mjx.rne_postconstraint(model, mjx.forward(model, data))
        return data, model

    def finish(
        self, data: Any, model: Any, state: MjxState, reward: Array, healthy: Array, info: dict[str, Array]
    ) -> tuple[Array, MjxState, Array, Array, dict[str, Array]]:
        """The step's return value: the episode ends at the time limit, when the task's
        health rule fails, or when the simulation is no longer finite. A non-finite state
        (possible in float32 with extreme Walker physics) ends the episode with reward 0 and
        a zero observation, so no NaN reaches the reward scaling, GAE or the ELBO buffer."""
        t = state.t + 1
        finite = jnp.all(jnp.isfinite(data.qpos)) & jnp.all(jnp.isfinite(data.qvel))
        obs = self.observation(data, model)
        obs = jnp.where(finite, obs, 0.0)
        reward = jnp.where(finite, reward, 0.0).astype(jnp.float32)
        healthy = healthy & finite
        done = (t >= self.max_episode_steps) | ~healthy
        # A time limit, not a fall: what "proper time limits" bootstrap at (PPOConfig.time_limit).
        timeout = (t >= self.max_episode_steps) & healthy
        return obs, MjxState.of(data, t), reward, done, {**info, "healthy": healthy, "timeout": timeout}

    def prepare_pictures(self) -> None:
        """A headless MuJoCo renderer (EGL, else OSMesa), or one line saying none works."""
        from hypermeta.analysis.behaviour import headless_gl

        headless_gl()

    def draw_trial(self, steps: dict, t: int, beliefs: Any, folder: Path, stem: str, title: str) -> list[Path]:
        """An MP4 of the trial rendered by MuJoCo at the environment's rate, and its middle frame as a PNG."""
        from hypermeta.analysis.behaviour import png_bytes, render_mujoco, save, trial_steps, write_video

        frames = render_mujoco(self.models[0], trial_steps(steps, t)["trial_state"].env_state.qpos)
        write_video(folder / f"{stem}.mp4", frames, 1.0 / self.dt)
        return [folder / f"{stem}.mp4", save(folder / f"{stem}.png", png_bytes(frames[len(frames) // 2]))]


def control_cost(coefficient: float, action: Array) -> Array:
    """coefficient * |a|^2 of the raw (unclipped) action, as the authors' envs compute it."""
    return coefficient * jnp.sum(jnp.square(action))
