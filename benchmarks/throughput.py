"""Training throughput of the compiled run loop, at the paper's sizes (Grid-World by default).

For each method and each number of runs, trains `runs` (seed, lr) pairs in one
vmapped program exactly as `hypermeta train` does (`Learner.init_runs` +
`Learner.compile_chunk()` called with eval_interval: eval_interval PPO updates then one
evaluation per call) and prints one JSON line:

    {"env", "method", "runs", "frames_per_second", "seconds", "compile_seconds", "peak_rss_mb"}

- compile_seconds: the first chunk call, i.e. compilation plus one chunk of work.
- seconds: wall time of the --chunks further chunk calls (compilation excluded).
- frames_per_second: chunks * eval_interval * frames_per_update * runs / seconds,
  environment frames summed over all runs (evaluation steps are not counted).
- peak_rss_mb: peak resident memory of the process that measured this configuration;
  every configuration runs in a fresh subprocess (`--one METHOD RUNS`).

- mflops_per_frame: floating-point operations of the networks per training frame, from
  XLA's own count of one encoder step and one policy evaluation times the passes an update
  makes (`flops_per_frame`; methods with an ELBO: not modelled, omitted).
- ceiling_fraction: frames_per_second x mflops_per_frame as a fraction of the ceiling,
  the GFLOP/s of one plain (960 x 6,400) @ (6,400 x 256) float32 matmul (a 960-frame
  update's batch through a hypernetwork head of the paper's size) timed by the parent
  process before the first configuration (`ceiling_gflops`) and again after the last.
- ratios (last lines): one run's frames/s of each env's RNN+HN against Grid-World's RNN+HN
  ("value"; and "per_flop", the same per network FLOP: the MuJoCo family's networks are about
  2x Grid-World's, state embedding 256 instead of 25, so per FLOP the ratio is the share of
  the time not spent on physics) and of RNN against RNN+HN.
- `--baseline GITREF`: every configuration is also measured with the code of that commit
  (extracted to a temporary directory, run with its own benchmarks/throughput.py),
  alternating with the working tree, so before and after come from one run of the machine.

Configurations: the default `TrainConfig` of the environment (`--env`, default grid-world:
`hypermeta.families.method_defaults(env, method)`, 16 envs x 60 steps = 960 frames per
update, eval every 5 updates; mc-ls: 16 x 800 = 12,800, eval every 10) with the method
replaced. One run is seed 73, lr 3e-4
(the defaults); 15 runs are the paper's sweep, lrs 3e-3 1e-3 3e-4 1e-4 3e-5 x seeds
73 20 3 (other counts take the first runs of that sweep, lr-major like
`TrainConfig.runs`).

Targets on a 2-core CPU: RNN >= 6,000 frames/s and RNN+HN >= 1,000 frames/s with one
run; 15 vmapped runs of RNN at least 3x the frames/s of one run. `--parallel-runs` sets
how many runs are vmapped side by side (the others follow in turn in the same program):
on a CPU the default (auto = 1) is the fastest for RNN, see docs/results/gpu-grid-world/README.md.

    python benchmarks/throughput.py                              # rnn, rnn-s, rnn-hn x 1 and 15 runs
    python benchmarks/throughput.py --methods rnn --runs 1 2 --chunks 1
    python benchmarks/throughput.py --methods rnn-hn --runs 1 --minibatch transitions envs   # PPO minibatch cost
    python benchmarks/throughput.py --methods all --runs 1 --chunks 2      # every method, one run
    python benchmarks/throughput.py --env mc-ls --methods rnn-hn --runs 1 --chunks 1
    # the trajectory encoder's sequence model (ModelConfig.sequence) with and without HN
    python benchmarks/throughput.py --methods rnn rnn-hn --runs 1 --sequence gru lstm transformer lru
    # before/after: this code against another commit, in the same run of the machine
    python benchmarks/throughput.py --methods rnn rnn-hn vi-hn --runs 1 --baseline 7bbe164
    # the MuJoCo tasks on C MuJoCo (the CPU default) and on MJX, with Grid-World for the ratios
    python benchmarks/throughput.py --env grid-world cheetah-vel ant-dir walker-params --methods rnn rnn-hn \
        --runs 1 --chunks 2 --updates-per-chunk 3 --physics c mjx
    # the MuJoCo tasks: env steps/s at 16 and 128 envs, then RNN and RNN+HN training
    python benchmarks/throughput.py --env cheetah-dir cheetah-vel ant-dir walker-params \
        --methods rnn rnn-hn --runs 1 --chunks 2 --updates-per-chunk 2 --env-steps 16 128
    # Meta-World ML10 through the host collector (8 x 600 frames per update)
    python benchmarks/throughput.py --env ml10 --methods rnn rnn-hn --runs 1 --chunks 1 \
        --updates-per-chunk 2 --env-steps 8 --vector-env sync async

A host environment (ml10) trains through its collector, `hypermeta.training.collectors.host_collector.HostCollector` (gymnasium
vector env, `--vector-env sync|async`), with the family's evaluation (10 trials per split
on ML10) after each chunk, exactly as `hypermeta train`.

Environment steps/s alone (random actions, no learner): benchmarks/env_steps.py.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SWEEP_LRS = (3e-3, 1e-3, 3e-4, 1e-4, 3e-5)
SWEEP_SEEDS = (73, 20, 3)
MAX_RUNS = len(SWEEP_LRS) * len(SWEEP_SEEDS)
CEILING_SHAPE = (960, 6400, 256)
"""(m, k, n) of the ceiling matmul: a 960-frame update's batch through a hypernetwork head
of the paper's size (in x embedding = 6,400 inputs)."""


def run_pairs(runs: int, default_seed: int, default_lr: float) -> list[tuple[int, float]]:
    """(seed, lr) of each run: the defaults for one run, else the first `runs` of the sweep."""
    if runs == 1:
        return [(default_seed, default_lr)]
    sweep = [(s, lr) for lr in SWEEP_LRS for s in SWEEP_SEEDS]  # same order as TrainConfig.runs
    return sweep[:runs]


def matmul_ceiling(shape: tuple[int, int, int] = CEILING_SHAPE, repeats: int = 7) -> float:
    """GFLOP/s of one plain float32 matmul (m x k) @ (k x n), best of `repeats` timings:
    the ceiling a network's big matmuls can reach on this machine, measured in this run."""
    import jax

    m, k, n = shape
    a = jax.random.normal(jax.random.PRNGKey(0), (m, k))
    b = jax.random.normal(jax.random.PRNGKey(1), (k, n))
    matmul = jax.jit(lambda a, b: a @ b)
    matmul(a, b).block_until_ready()
    best, calls = float("inf"), 10
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            out = matmul(a, b)
        out.block_until_ready()
        best = min(best, (time.perf_counter() - t0) / calls)
    return 2 * m * k * n / best / 1e9


def flops_per_frame(learner, state) -> float | None:
    """Floating-point operations the networks spend per training frame, from XLA's own count
    (`cost_analysis`) of one loop-free encoder step and one policy evaluation, times the
    passes an update makes: acting runs both once; each PPO epoch runs the policy forward
    and backward over every transition (backward ~ 2x forward, so 3 passes); where PPO
    trains the encoder it is replayed over the whole rollout before every minibatch
    ("transitions"; once per epoch with "envs"), 3 passes each. None for methods with an
    ELBO (its cost is not modelled here)."""
    import jax

    from hypermeta.training import conditioning
    from hypermeta.training.experience import encoder_inputs

    agent, cfg = learner.agent, learner.cfg.ppo
    if learner.method.variational:
        return None
    carry = state.carry  # one run's num_envs environments
    envs = cfg.num_envs

    def cost(fn, *args) -> float:
        analysis = jax.jit(fn).lower(*args).compile().cost_analysis()
        analysis = analysis[0] if isinstance(analysis, list) else analysis
        return float(analysis["flops"]) / envs

    encode = lambda params, c: agent.encode(params, c.hidden, encoder_inputs(c))  # noqa: E731
    encoder = cost(encode, state.params, carry)
    _, latent = encode(state.params, carry)
    policy = cost(lambda params, obs, latent, task: conditioning.policy(agent, params, state.norms, obs, latent, task,
                                                                        False), state.params, carry.obs, latent,
                  carry.trial_state.task)
    replays = 0
    if agent.method.encoder.trained_by_ppo:
        replays = cfg.epochs * (cfg.minibatches if cfg.minibatch == "transitions" else 1)
    return (encoder + policy) + 3 * cfg.epochs * policy + 3 * replays * encoder


def measure(env: str, method: str, runs: int, chunks: int, parallel_runs: int, updates_per_chunk: int = 0,
            vector_env: str = "sync", minibatch: str = "", sequence: str = "", physics: str = "") -> dict:
    """Time one configuration in this process (call it in a fresh process)."""
    import dataclasses

    import jax

    from hypermeta.families import method_defaults
    from hypermeta.training.collectors.jax_collector import JaxCollector
    from hypermeta.training.learner import Learner
    from hypermeta.training.loop import resolve_parallel_runs

    base = method_defaults(env, method)  # the family's settings as this method uses them
    if updates_per_chunk:
        base = dataclasses.replace(base, eval_interval=updates_per_chunk)
    if minibatch:
        base = dataclasses.replace(base, ppo=dataclasses.replace(base.ppo, minibatch=minibatch))
    if sequence:
        base = dataclasses.replace(base, model=dataclasses.replace(base.model, sequence=sequence))
    if physics:
        base = dataclasses.replace(base, physics=physics)
    pairs = run_pairs(runs, base.seeds[0], base.lr[0])
    cfg = dataclasses.replace(base, method=method, seeds=tuple(dict.fromkeys(s for s, _ in pairs)),
                              lr=tuple(dict.fromkeys(lr for _, lr in pairs)), vector_env=vector_env)
    learner = Learner(cfg)
    states = learner.init_runs([s for s, _ in pairs], [lr for _, lr in pairs])
    jax.block_until_ready(states)
    on_host = not isinstance(learner.collector, JaxCollector)  # reported, not branched on
    chunk = learner.compile_chunk(resolve_parallel_runs(parallel_runs))

    t0 = time.perf_counter()
    states, metrics = chunk(states, cfg.eval_interval)
    jax.block_until_ready((states, metrics))
    compile_seconds = time.perf_counter() - t0

    t0 = time.perf_counter()
    for _ in range(chunks):
        states, metrics = chunk(states, cfg.eval_interval)
    jax.block_until_ready((states, metrics))
    seconds = time.perf_counter() - t0

    frames = chunks * cfg.eval_interval * cfg.ppo.frames_per_update * runs
    flops = None if on_host else flops_per_frame(learner, jax.tree.map(lambda x: x[0], states))
    return {
        "env": env,
        "method": method,
        "runs": runs,
        "updates_per_chunk": cfg.eval_interval,
        **({"minibatch": minibatch} if minibatch else {}),
        **({"sequence": sequence} if sequence else {}),
        **({"physics": learner.env.physics} if hasattr(learner.env, "physics") else {}),  # the MuJoCo tasks' engine
        "parallel_runs": runs if on_host else resolve_parallel_runs(parallel_runs) or runs,
        **({"vector_env": vector_env} if on_host else {}),
        "backend": jax.default_backend(),
        "frames_per_second": round(frames / seconds, 1),
        "seconds": round(seconds, 3),
        "compile_seconds": round(compile_seconds, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),  # KB on Linux
        **({"mflops_per_frame": round(flops / 1e6, 3)} if flops else {}),
    }


def checkout(ref: str) -> Path:
    """The tree of git commit `ref` of this repository, extracted into a temporary directory."""
    repo = Path(__file__).resolve().parent.parent
    target = Path(tempfile.mkdtemp(prefix="hypermeta-baseline-"))
    archive = subprocess.run(["git", "-C", str(repo), "archive", ref], stdout=subprocess.PIPE, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


def ratios(results: list[dict]) -> list[dict]:
    """Frames/s ratios within each code version, one run: every env's RNN+HN against
    Grid-World's RNN+HN (the physics' cost, same network) and RNN against RNN+HN per env."""
    fps = {(r["code"], r["env"], r["method"], r.get("physics", "")): r["frames_per_second"]
           for r in results if r["runs"] == 1 and "frames_per_second" in r}
    flops = {(r["env"], r["method"]): r["mflops_per_frame"] for r in results if r.get("mflops_per_frame")}
    lines = []
    for (code, env, method, physics), value in fps.items():
        grid = fps.get((code, "grid-world", "rnn-hn", ""))
        if method == "rnn-hn" and env != "grid-world" and grid:
            line = {"ratio": "rnn-hn frames/s vs grid-world rnn-hn", "code": code, "env": env,
                    **({"physics": physics} if physics else {}), "value": round(value / grid, 3)}
            if (env, method) in flops and ("grid-world", method) in flops:
                # The MuJoCo family's networks are larger (state embedding 256, not 25): per
                # network FLOP, the ratio is the share of the time not spent on physics.
                line["per_flop"] = round(value * flops[env, method] / (grid * flops["grid-world", method]), 3)
            lines.append(line)
        hyper = fps.get((code, env, "rnn-hn", physics))
        if method == "rnn" and hyper:
            lines.append({"ratio": "rnn frames/s vs rnn-hn", "code": code, "env": env,
                          **({"physics": physics} if physics else {}), "value": round(value / hyper, 2)})
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", nargs="+", default=["grid-world"], help="registered environment names")
    parser.add_argument("--methods", nargs="+", default=["rnn", "rnn-s", "rnn-hn"],
                        help="method names, or 'all' for every registered method")
    parser.add_argument("--runs", nargs="+", type=int, default=[1, MAX_RUNS],
                        help=f"numbers of vmapped runs to measure, each 1..{MAX_RUNS}")
    parser.add_argument("--chunks", type=int, default=4, help="timed chunk calls after the first one")
    parser.add_argument("--parallel-runs", type=int, default=0,
                        help="runs vmapped side by side (TrainConfig.parallel_runs; 0 = auto: 1 on CPU, all on GPU)")
    parser.add_argument("--updates-per-chunk", type=int, default=0,
                        help="PPO updates per timed chunk (0 = the family's eval_interval; MuJoCo: 25 x 6,400 frames)")
    parser.add_argument("--env-steps", nargs="*", type=int, default=None, metavar="ENVS",
                        help="first print environment steps/s (benchmarks/env_steps.py) with these batch sizes")
    parser.add_argument("--vector-env", nargs="+", choices=["sync", "async"], default=["sync"],
                        help="gymnasium vector env(s) for host environments (ml10); JAX environments ignore it")
    parser.add_argument("--minibatch", nargs="+", choices=["transitions", "envs"], default=[""],
                        help="PPO minibatches (PPOConfig.minibatch) to measure; default: the family's")
    parser.add_argument("--sequence", nargs="+", choices=["gru", "lstm", "transformer", "lru"], default=[""],
                        help="trajectory encoders (ModelConfig.sequence) to measure; default: the GRU")
    parser.add_argument("--physics", nargs="+", choices=["mjx", "c"], default=[""],
                        help="MuJoCo physics engine(s) (TrainConfig.physics) to measure; default: auto (C on a CPU)")
    parser.add_argument("--baseline", metavar="GITREF",
                        help="also measure every configuration with the code of this git commit (checked out into a "
                             "temporary directory), alternating with the working tree: before/after in one run")
    parser.add_argument("--one", nargs=2, metavar=("METHOD", "RUNS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.chunks < 1 or args.updates_per_chunk < 0:
        parser.error("--chunks must be >= 1 and --updates-per-chunk >= 0")

    if args.one is not None:  # the child: measure one configuration, print its JSON line
        method, runs = args.one[0], int(args.one[1])
        print(json.dumps(measure(args.env[0], method, runs, args.chunks, args.parallel_runs, args.updates_per_chunk,
                                 args.vector_env[0], args.minibatch[0], args.sequence[0], args.physics[0])), flush=True)
        return 0

    from hypermeta.envs.registry import env_spec
    from hypermeta.errors import UsageError

    for name in args.env:
        try:
            env_spec(name)
        except UsageError as err:
            parser.error(str(err))
    bad = [r for r in args.runs if not 1 <= r <= MAX_RUNS]
    if bad:
        parser.error(f"--runs must be between 1 and {MAX_RUNS}, got {bad}")
    if args.methods == ["all"]:
        from hypermeta.methods import METHODS

        args.methods = list(METHODS)
    from hypermeta.envs.host import HostEnvironment
    from hypermeta.envs.registry import make_env

    # Vector envs matter only for host environments.
    vectors = {env: args.vector_env if isinstance(make_env(env), HostEnvironment) else ["sync"] for env in args.env}
    # The physics engine matters only for the MuJoCo tasks.
    engines = {env: args.physics if hasattr(make_env(env), "physics") else [""] for env in args.env}
    if args.env_steps:
        import env_steps  # the sibling script (this directory is on sys.path)

        for name in args.env:
            for envs in args.env_steps:
                for vector in vectors[name]:
                    print(json.dumps(env_steps.measure(name, envs, steps=200, repeats=2, vector=vector)), flush=True)
    baseline = checkout(args.baseline) if args.baseline else None
    ceilings = [matmul_ceiling()]
    print(json.dumps({"ceiling_gflops": round(ceilings[0], 1), "shape": CEILING_SHAPE}), flush=True)
    failed, results = 0, []
    configs = [(env, method, runs, vector, mb, seq, phys) for env in args.env for method in args.methods
               for runs in args.runs for vector in vectors[env] for mb in args.minibatch for seq in args.sequence
               for phys in engines[env]]
    for env, method, runs, vector, mb, seq, phys in configs:
        options = ["--chunks", str(args.chunks), "--parallel-runs", str(args.parallel_runs),
                   "--updates-per-chunk", str(args.updates_per_chunk), "--vector-env", vector]
        options += (["--minibatch", mb] if mb else []) + (["--sequence", seq] if seq else [])
        codes = [("working tree", __file__, options + (["--physics", phys] if phys else []), None)]
        if baseline is not None:  # the old code knows only the options it had: no --physics (MJX was all it had)
            codes.insert(0, (args.baseline, str(baseline / "benchmarks" / "throughput.py"), options, baseline / "src"))
        flops = None
        for code, script, opts, src in codes:
            env_vars = {**os.environ, "PYTHONPATH": str(src)} if src else None
            proc = subprocess.run([sys.executable, script, "--env", env, "--one", method, str(runs), *opts],
                                  stdout=subprocess.PIPE, text=True, env=env_vars)  # stderr passes through
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
            if proc.returncode != 0 or not lines:
                failed += 1
                print(json.dumps({"env": env, "method": method, "runs": runs, "code": code,
                                  "error": f"exit code {proc.returncode}"}), flush=True)
                continue
            result = json.loads(lines[-1])
            flops = result.get("mflops_per_frame", flops)  # the same networks: the working tree's count serves both
            result["code"] = code
            if flops:
                achieved = result["frames_per_second"] * flops / 1e3
                result["mflops_per_frame"] = flops
                result["ceiling_fraction"] = round(achieved / ceilings[0], 3)
            results.append(result)
        for result in results[-len(codes):]:
            print(json.dumps(result), flush=True)
    ceilings.append(matmul_ceiling())
    print(json.dumps({"ceiling_gflops_after": round(ceilings[1], 1)}), flush=True)
    for line in ratios(results):
        print(json.dumps(line), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
