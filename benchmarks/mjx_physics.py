"""How much the MuJoCo tasks' physics choices change a rollout, and what they buy in speed.

Two measurements, one JSON line each (the figures quoted in docs/results/mujoco-cpu/README.md):

* `solver`, per task: the default solver budget (4 Newton iterations, 8 line-search steps)
  against the model files' (100 / 50). Both step the same random-action trajectories in
  MJX; reported are the teacher-forced one-step differences (every step starts both from
  the same state: median and 99th percentile of |qpos| and |reward| differences), the mean
  return per episode of `--episodes` open-loop episodes under each budget (same actions,
  same start states), and env steps/s of each with 16 envs (benchmarks/env_steps.py).
* `walker-constants`: Walker's derived constants (body_invweight0, dof_invweight0, ...;
  MuJoCo's `mj_setConst`) are not recomputed after the 65 coefficients change. Measured in
  C MuJoCo (float64) on random tasks: the one-step differences between the model with the
  coefficients written (what MJX steps) and the same model after `mj_setConst`, and the
  mean episode return of both under the same open-loop actions.

    python benchmarks/mjx_physics.py                       # everything (~10 minutes on 2 cores)
    python benchmarks/mjx_physics.py --only walker-constants --episodes 16
"""

from __future__ import annotations

import argparse
import copy
import json
import sys

import numpy as np

import env_steps  # the sibling script (this directory is on sys.path)

TASKS = ("cheetah-dir", "cheetah-vel", "ant-dir", "walker-params")


def _random_trajectory_errors(env_a, env_b, steps: int, seed: int) -> dict[str, float]:
    """Teacher-forced |a - b| of next qpos and reward along env_a's random-action trajectory."""
    import jax
    import jax.numpy as jnp

    step_a, step_b = jax.jit(env_a.step), jax.jit(env_b.step)
    key = jax.random.PRNGKey(seed)
    task = env_a.sample_task(key)
    _, state = jax.jit(env_a.reset)(key, task)
    actions = np.random.default_rng(seed).uniform(-1, 1, (steps, env_a.action_space.shape[0])).astype(np.float32)
    dq, dr = [], []
    for t in range(steps):
        _, sa, ra, done, _ = step_a(key, state, jnp.asarray(actions[t]), task)
        _, sb, rb, _, _ = step_b(key, state, jnp.asarray(actions[t]), task)
        dq.append(float(jnp.max(jnp.abs(sa.qpos - sb.qpos))))
        dr.append(abs(float(ra) - float(rb)))
        state = sa
        if bool(done):
            _, state = jax.jit(env_a.reset)(jax.random.PRNGKey(seed * 1000 + t), task)
    return {"qpos_median": float(np.median(dq)), "qpos_p99": float(np.quantile(dq, 0.99)),
            "reward_median": float(np.median(dr)), "reward_p99": float(np.quantile(dr, 0.99))}


def _mean_episode_return(env, episodes: int, seed: int) -> float:
    """Mean return of `episodes` open-loop random-action episodes (one task each), vmapped."""
    import jax
    import jax.numpy as jnp

    n, steps = episodes, env.max_episode_steps
    key = jax.random.PRNGKey(seed)
    tasks = jax.vmap(env.sample_task)(jax.random.split(key, n))
    actions = jnp.asarray(np.random.default_rng(seed).uniform(-1, 1, (steps, n, env.action_space.shape[0])),
                          jnp.float32)

    @jax.jit
    def run(tasks, actions):
        _, state = jax.vmap(env.reset)(jax.random.split(key, n), tasks)

        def body(carry, action):
            state, alive = carry
            _, state, reward, done, _ = jax.vmap(env.step)(jax.random.split(key, n), state, action, tasks)
            return (state, alive & ~done), reward * alive

        _, rewards = jax.lax.scan(body, (state, jnp.ones(n, bool)), actions)
        return rewards.sum(0).mean()

    return float(run(tasks, actions))


def measure_solver(name: str, episodes: int) -> dict:
    import dataclasses

    from hypermeta.envs import make_env

    fast = make_env(name, physics="mjx")  # the MJX solver's budget (C's is the same settings, float64)
    full = dataclasses.replace(fast, solver_iterations=100, ls_iterations=50)
    return {
        "measure": "solver", "env": name,
        "one_step_difference": _random_trajectory_errors(fast, full, 200, seed=1),
        "mean_return_4_8": round(_mean_episode_return(fast, episodes, seed=2), 2),
        "mean_return_100_50": round(_mean_episode_return(full, episodes, seed=2), 2),
        "env_steps_per_second_4_8": env_steps.measure(name, 16, 200, 2, env=fast)["env_steps_per_second"],
        "env_steps_per_second_100_50": env_steps.measure(name, 16, 200, 2, env=full)["env_steps_per_second"],
    }


def measure_walker_constants(tasks: int, episodes_per_task: int = 1) -> dict:
    """C MuJoCo: coefficients written without / with mj_setConst, same actions and starts."""
    import jax
    import mujoco

    from hypermeta.envs.walker_params import WalkerParams

    env = WalkerParams()
    base = env.models[0]
    rng = np.random.default_rng(0)
    dq, returns = [], {"written": [], "set_const": []}
    for i in range(tasks):
        task = env.sample_task(jax.random.PRNGKey(i))
        written = copy.deepcopy(base)
        for field, value in env.split_task(task).items():
            getattr(written, field)[:] = np.asarray(value)
        recomputed = copy.deepcopy(written)
        mujoco.mj_setConst(recomputed, mujoco.MjData(recomputed))
        qpos, qvel = (np.asarray(x, np.float64) for x in env.initial_qpos_qvel(jax.random.PRNGKey(100 + i)))
        actions = rng.uniform(-1, 1, (env.max_episode_steps, 6))
        for label, model in (("written", written), ("set_const", recomputed)):
            data = mujoco.MjData(model)
            data.qpos[:], data.qvel[:] = qpos, qvel
            total = 0.0
            for t in range(env.max_episode_steps):
                if label == "written":  # one-step difference from the same state
                    other = mujoco.MjData(recomputed)
                    other.qpos[:], other.qvel[:], other.qacc_warmstart[:] = data.qpos, data.qvel, data.qacc_warmstart
                    other.ctrl[:] = actions[t]
                    for _ in range(env.frame_skip):
                        mujoco.mj_step(recomputed, other)
                x0 = data.qpos[0]
                data.ctrl[:] = actions[t]
                for _ in range(env.frame_skip):
                    mujoco.mj_step(model, data)
                if label == "written":
                    dq.append(np.abs(other.qpos - data.qpos).max())
                total += (data.qpos[0] - x0) / env.dt + 1.0 - 1e-3 * np.sum(actions[t] ** 2)
                height, angle = data.qpos[1], data.qpos[2]
                if not (0.8 < height < 2.0 and -1.0 < angle < 1.0):
                    break
            returns[label].append(total)
    diff = np.asarray(returns["written"]) - np.asarray(returns["set_const"])
    return {
        "measure": "walker-constants", "tasks": tasks,
        "one_step_qpos_difference_median": float(np.median(dq)),
        "one_step_qpos_difference_p99": float(np.quantile(dq, 0.99)),
        "mean_return_written": round(float(np.mean(returns["written"])), 2),
        "mean_return_set_const": round(float(np.mean(returns["set_const"])), 2),
        "mean_abs_return_difference": round(float(np.mean(np.abs(diff))), 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["solver", "walker-constants"], default=None)
    parser.add_argument("--env", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--episodes", type=int, default=64, help="open-loop episodes per measurement")
    args = parser.parse_args(argv)
    if args.episodes < 1:
        parser.error("--episodes must be >= 1")
    if args.only in (None, "solver"):
        for name in args.env:
            print(json.dumps(measure_solver(name, args.episodes)), flush=True)
    if args.only in (None, "walker-constants"):
        print(json.dumps(measure_walker_constants(args.episodes)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
