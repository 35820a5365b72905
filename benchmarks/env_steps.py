"""Environment throughput: trial steps per second with uniform random actions.

Steps `envs` copies of an environment inside its `TrialWrapper` (auto-resets, new tasks,
done bits: what training pays for) with uniform random actions, in one jitted
`lax.scan` of `steps` steps over a `vmap`, and prints one JSON line per (env, envs):

    {"env", "envs", "steps", "backend", "physics", "env_steps_per_second", "seconds", "compile_seconds", "peak_rss_mb"}

- compile_seconds: the first call (compilation plus one scan).
- seconds: wall time of `--repeats` further calls; env_steps_per_second counts every
  environment's steps (envs * steps * repeats / seconds).
- physics: the MuJoCo tasks' physics backend (`--physics mjx c`; "auto": C on a CPU, MJX
  elsewhere; `--threads N` steps the C backend's batch in N threads); "-" for other envs.
- peak_rss_mb: peak resident memory of this process so far (configurations run in order
  in one process, so read it as an upper bound for the later ones).

A host environment (ml10) is stepped the way the host collector steps it: `envs` trial
streams (`hypermeta.envs.host.TrialEnv`) in one gymnasium vector env (`--vector sync` or
`async`), numpy random actions, one `step` call per step; compile_seconds is then the
first call's `steps` steps (building the simulators included).

    python benchmarks/env_steps.py --env mc-ls --envs 1024
    python benchmarks/env_steps.py --env grid-world mc-ls --envs 16 128 1024
    python benchmarks/env_steps.py --env cheetah-dir ant-dir walker-params --envs 16 --steps 200 --physics mjx c
    python benchmarks/env_steps.py --env ml10 --envs 8 --steps 500 --repeats 2 --vector sync async
    python benchmarks/env_steps.py --env grid-world gymnax:MetaMaze-misc \
        xland:XLand-MiniGrid-R1-9x9:benchmark=tests/data/xland/trivial-500   # the adapters (extras gymnax, xland)
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time


def measure(env_name: str, envs: int, steps: int, repeats: int, env=None, vector: str = "sync",
            physics: str = "auto") -> dict:
    """Time `envs` copies of the registered `env_name` (or of `env`, an Environment built
    with other settings, reported under `env_name`); `physics`: the MuJoCo tasks' backend."""
    import jax

    from hypermeta.envs import TrialWrapper, make_env
    from hypermeta.envs.host import HostEnvironment

    env = make_env(env_name, physics=physics) if env is None else env
    if isinstance(env, HostEnvironment):
        return measure_host(env_name, env, envs, steps, repeats, vector)
    trial = TrialWrapper(env, env.episodes_per_trial)

    @jax.jit
    def run(key):
        reset_key, run_key = jax.random.split(key)
        _, state = jax.vmap(trial.reset)(jax.random.split(reset_key, envs))

        def step(state, key):
            action_key, step_key = jax.random.split(key)
            actions = jax.vmap(trial.action_space.sample)(jax.random.split(action_key, envs))
            obs, state, reward, done, _ = jax.vmap(trial.step)(jax.random.split(step_key, envs), state, actions)
            return state, reward.sum() + obs[:, 0].sum()  # keep the observation alive

        _, totals = jax.lax.scan(step, state, jax.random.split(run_key, steps))
        return totals.sum()

    t0 = time.perf_counter()
    jax.block_until_ready(run(jax.random.PRNGKey(0)))
    compile_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in range(repeats):
        jax.block_until_ready(run(jax.random.PRNGKey(i + 1)))
    seconds = time.perf_counter() - t0
    return {
        "env": env_name,
        "envs": envs,
        "steps": steps,
        "backend": jax.default_backend(),
        "physics": getattr(env, "physics", "-"),
        "env_steps_per_second": round(envs * steps * repeats / seconds),
        "seconds": round(seconds, 3),
        "compile_seconds": round(compile_seconds, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),  # KB on Linux
    }


def measure_host(env_name: str, env, envs: int, steps: int, repeats: int, vector: str) -> dict:
    """`measure` for a host environment: a gymnasium vector env of trial streams."""
    import numpy as np

    from hypermeta.envs.host import make_vector_env

    vec = make_vector_env(env, env.splits[0], envs, vector)
    rng = np.random.default_rng(0)
    vec.reset(seed=0)

    def run() -> None:
        for _ in range(steps):
            vec.step(rng.uniform(-1.0, 1.0, (envs,) + vec.single_action_space.shape).astype(np.float32))

    t0 = time.perf_counter()
    run()
    compile_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(repeats):
        run()
    seconds = time.perf_counter() - t0
    vec.close()
    return {
        "env": env_name,
        "envs": envs,
        "steps": steps,
        "vector": vector,
        "env_steps_per_second": round(envs * steps * repeats / seconds),
        "seconds": round(seconds, 3),
        "compile_seconds": round(compile_seconds, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),  # KB on Linux
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", nargs="+", default=["mc-ls"], help="registered environment names")
    parser.add_argument("--envs", nargs="+", type=int, default=[16, 128, 1024], help="batch sizes")
    parser.add_argument("--steps", type=int, default=1000, help="steps per timed call")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls after the first one")
    parser.add_argument("--vector", nargs="+", choices=["sync", "async"], default=["sync"],
                        help="gymnasium vector env(s) for host environments (ml10); JAX environments ignore it")
    parser.add_argument("--physics", nargs="+", choices=["auto", "mjx", "c"], default=["auto"],
                        help="physics backend(s) of the MuJoCo tasks (auto: c on a CPU); other envs ignore it")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads of the C physics backend per batch (default: hypermeta.envs.mujoco_c.THREADS)")
    args = parser.parse_args(argv)
    if min(args.envs) < 1 or args.steps < 1 or args.repeats < 1:
        parser.error("--envs, --steps and --repeats must be >= 1")
    from hypermeta.envs.registry import env_spec
    from hypermeta.errors import UsageError

    for name in args.env:
        try:
            env_spec(name)
        except UsageError as err:
            parser.error(str(err))
    from hypermeta.envs import mujoco_c
    from hypermeta.envs.host import HostEnvironment
    from hypermeta.envs.mjx_env import MjxEnv
    from hypermeta.envs.registry import make_env

    if args.threads is not None:
        mujoco_c.THREADS = args.threads
    for name in args.env:
        vectors = args.vector if isinstance(make_env(name), HostEnvironment) else ["sync"]
        physics = args.physics if isinstance(make_env(name), MjxEnv) else ["auto"]
        for envs in args.envs:
            for vector in vectors:
                for p in physics:
                    print(json.dumps(measure(name, envs, args.steps, args.repeats, vector=vector, physics=p)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
