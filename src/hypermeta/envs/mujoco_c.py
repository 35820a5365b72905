"""MuJoCo's C library as the physics of the MuJoCo tasks, called from compiled JAX.

On a CPU, MJX (MuJoCo in JAX) steps these robots about 10x slower than MuJoCo's C library
and its step takes minutes to compile. With `physics="c"` a task's physics is instead a
`jax.pure_callback` into the C library inside the compiled rollout: one call per
environment step over the whole batch of environments (`vmap_method="broadcast_all"`:
under `vmap` the callback receives the stacked batch, whatever the number of vmapped
axes, and loops over it in C-speed calls). Everything else (task sampling, rewards,
terminations, observations) stays the tasks' JAX code: the callback returns a `CData`
holding exactly the fields of MuJoCo's data the tasks read.

The transition is that of tests/test_mujoco.py's reference: the float32 state (qpos, qvel,
qacc_warmstart) is written into a float64 `MjData`, ctrl is the action clipped to
[-1, 1], `frame_skip` `mj_step`s run, and the result is rounded back to float32. The C
model is `load_model(...)[0]`, the one the MJX model was made from, so both backends
run the same timestep, integrator, cone and solver iterations and differ at float
precision only (docs/environments.md, "MuJoCo physics: C on CPUs, MJX on GPUs").
"""

from __future__ import annotations

import copy
import functools
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from hypermeta.envs.base import Array

# The C library's own divergence handling, turned off so C behaves as MJX does: MJX lets
# NaN / huge values propagate (the task's `finish` then ends the episode), while C MuJoCo
# would silently reset the state to the model's initial pose and print a warning
# (and append it to ./MUJOCO_LOG.TXT). Counting these warnings as already reported keeps
# MuJoCo from printing them; the disabled auto-reset keeps the non-finite state.
_SILENCED_WARNINGS = ("mjWARN_BADQPOS", "mjWARN_BADQVEL", "mjWARN_BADQACC")

THREADS: int | None = None
"""Worker threads per batch for every task (`CStepper.threads`); None: each task's own
`MjxEnv.c_threads` (benchmarks/env_steps.py --threads sets this)."""

CPU_THREADS_VAR = "HYPERMETA_CPU_THREADS"
"""Cores this process may use, where it shares a machine: a sweep cell's --cell-cpus (its Ray task
sets it, hypermeta.sweeps.cluster.cell_env). The physics never splits a batch over more threads."""


def cpu_threads() -> int:
    """The cores this process may use: $HYPERMETA_CPU_THREADS where set (a positive integer),
    else every core of the machine."""
    try:
        limit = int(os.environ.get(CPU_THREADS_VAR, ""))
    except ValueError:
        limit = 0
    return limit if limit > 0 else os.cpu_count() or 1


@struct.dataclass
class CData:
    """The fields of MuJoCo's data the tasks read, after a C step (float32, like MJX's).

    `cfrc_ext` (the contact forces of the post-constraint pass) is None unless the task
    asked for it (the Ant)."""

    qpos: Array
    qvel: Array
    qacc_warmstart: Array
    xpos: Array
    cfrc_ext: Array | None = None


@dataclass(eq=False)
class CStepper:
    """Batches of C MuJoCo transitions of one model: preallocated `MjData` per environment.

    `param_names`: model fields set per environment before its step (Walker's physics
    coefficients); each worker thread then owns a private copy of the model, since writing
    the shared cached one would change every other user's physics. `contact_forces`: run
    `mj_forward` + `mj_rnePostConstraint` after the step, so `cfrc_ext` holds the contact
    forces of the state after the step (what the Ant's reward reads, as with MJX).
    `threads`: the batch is split into this many contiguous chunks stepped in parallel
    (the bindings release the GIL inside `mj_step`); see THREADS."""

    model: Any
    frame_skip: int
    contact_forces: bool = False
    param_names: tuple[str, ...] = ()
    threads: int = 1
    _datas: list[Any] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    """Held during a batch: two compiled programs running at once would share the MjData."""

    def __post_init__(self) -> None:
        import mujoco

        self.model = copy.copy(self.model)  # a private copy: its options (and Walker's parameters) change
        self.model.opt.disableflags |= mujoco.mjtDisableBit.mjDSBL_AUTORESET
        # One model per worker where parameters are written per environment (else one, shared read-only).
        self._models = [self.model] + [copy.copy(self.model) for _ in range(self.threads - 1) if self.param_names]
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="mujoco") if self.threads > 1 else None

    def _data(self, n: int) -> list[Any]:
        """At least `n` MjData (grown once to the largest batch seen). Reusing them is exact:
        `mj_step` recomputes everything from qpos, qvel, ctrl and the warm start (these
        models have no activations, mocap bodies or applied forces), all written per step."""
        import mujoco

        while len(self._datas) < n:
            data = mujoco.MjData(self.model)
            for name in _SILENCED_WARNINGS:
                data.warning[getattr(mujoco.mjtWarning, name)].number = 1
            self._datas.append(data)
        return self._datas

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        """The returned fields and their per-environment shapes, in the callback's order."""
        m = self.model
        shapes = {"qpos": (m.nq,), "qvel": (m.nv,), "qacc_warmstart": (m.nv,), "xpos": (m.nbody, 3)}
        if self.contact_forces:
            shapes["cfrc_ext"] = (m.nbody, 6)
        return shapes

    def step_batch(self, qpos: np.ndarray, qvel: np.ndarray, warmstart: np.ndarray, ctrl: np.ndarray,
                   *params: np.ndarray) -> tuple[np.ndarray, ...]:
        """The callback: arrays with any leading batch dimensions (the same for all);
        returns float32 arrays of `shapes`, with those leading dimensions, in that order."""
        batch = qpos.shape[:-1]
        n = math.prod(batch)
        inputs = [np.asarray(x, np.float64).reshape(n, -1) for x in (qpos, qvel, warmstart, ctrl)]
        inputs += [np.asarray(p, np.float64).reshape(n, *np.shape(getattr(self.model, name)))
                   for p, name in zip(params, self.param_names, strict=True)]
        shapes = self.shapes
        out = {k: np.empty((n, *s), np.float32) for k, s in shapes.items()}
        with self._lock:
            self._data(n)
            if self._pool is None or n < 2:
                self._step_range(0, 0, n, inputs, out)
            else:
                bounds = np.linspace(0, n, self.threads + 1).astype(int)
                jobs = [self._pool.submit(self._step_range, w, bounds[w], bounds[w + 1], inputs, out)
                        for w in range(self.threads)]
                for job in jobs:
                    job.result()
        return tuple(o.reshape(*batch, *shapes[k]) for k, o in out.items())

    def _step_range(self, worker: int, lo: int, hi: int, inputs: list[np.ndarray], out: dict[str, np.ndarray]) -> None:
        """Step environments lo..hi-1 with worker `worker`'s model, writing rows of `out`."""
        import mujoco

        m = self._models[worker % len(self._models)]
        qpos, qvel, warmstart, ctrl, *params = inputs
        views = [getattr(m, name) for name in self.param_names]  # written in place
        skip, datas = self.frame_skip, self._datas
        for i in range(lo, hi):
            d = datas[i]
            for view, value in zip(views, params, strict=True):
                view[...] = value[i]
            d.qpos[:] = qpos[i]
            d.qvel[:] = qvel[i]
            d.qacc_warmstart[:] = warmstart[i]
            d.ctrl[:] = ctrl[i]
            mujoco.mj_step(m, d, skip)
            if self.contact_forces:  # the forces of the state after the step
                mujoco.mj_forward(m, d)
                mujoco.mj_rnePostConstraint(m, d)
            for k, o in out.items():
                o[i] = getattr(d, k)

    def kinematics_batch(self, qpos: np.ndarray) -> np.ndarray:
        """Body positions (xpos) of each qpos: what a reset's observation may read."""
        import mujoco

        batch = qpos.shape[:-1]
        n = math.prod(batch)
        qpos = np.asarray(qpos, np.float64).reshape(n, -1)
        out = np.empty((n, self.model.nbody, 3), np.float32)
        with self._lock:
            m, datas = self.model, self._data(n)
            for i in range(n):
                datas[i].qpos[:] = qpos[i]
                mujoco.mj_kinematics(m, datas[i])  # body masses etc. (Walker's task) do not enter it
                out[i] = datas[i].xpos
        return out.reshape(*batch, self.model.nbody, 3)

    def step(self, qpos: Array, qvel: Array, warmstart: Array, ctrl: Array, params: dict[str, Array]) -> CData:
        """One environment step (`frame_skip` physics steps) of the (possibly vmapped) state."""
        shapes = self.shapes
        result = tuple(jax.ShapeDtypeStruct(s, np.float32) for s in shapes.values())
        values = [params[name] for name in self.param_names]
        out = jax.pure_callback(self.step_batch, result, qpos, qvel, warmstart, ctrl, *values,
                                vmap_method="broadcast_all")
        return CData(**dict(zip(shapes, out, strict=True)))

    def kinematics(self, qpos: Array) -> Array:
        """xpos of a (possibly vmapped) qpos. A reset whose observation does not read xpos
        loses the call to dead-code elimination (the callback is pure)."""
        result = jax.ShapeDtypeStruct((self.model.nbody, 3), np.float32)
        return jax.pure_callback(self.kinematics_batch, result, qpos, vmap_method="broadcast_all")


def normalize_quaternions(model: Any, qpos: Array) -> Array:
    """`qpos` with its free and ball joints' quaternions of unit length, as MJX's kinematics
    leaves them at a reset (the reset noise makes the Ant's non-unit; C MuJoCo normalises
    them only inside its computations and in each step's integration, and would keep the
    noisy one in the first observation and the first step's start)."""
    import mujoco

    for joint in range(model.njnt):
        kind, adr = model.jnt_type[joint], int(model.jnt_qposadr[joint])
        if kind == mujoco.mjtJoint.mjJNT_FREE:
            adr += 3  # position, then the quaternion
        elif kind != mujoco.mjtJoint.mjJNT_BALL:
            continue
        quat = qpos[..., adr:adr + 4]
        qpos = qpos.at[..., adr:adr + 4].set(quat / jnp.linalg.norm(quat, axis=-1, keepdims=True))
    return qpos


@functools.cache
def stepper(model: Any, frame_skip: int, contact_forces: bool, param_names: tuple[str, ...],
            threads: int = 1) -> CStepper:
    """The stepper of a (cached, shared) C model and these settings: one per process, so
    its MjData are allocated once (`MjxEnv.c_stepper` chooses `threads`)."""
    return CStepper(model, frame_skip, contact_forces, param_names, threads)
