"""Start-up time with the persistent compilation cache (`hypermeta.compile_cache`): the same
training configuration started twice, in fresh processes sharing one fresh cache directory.

Each configuration is the family's default `TrainConfig` for the method
(`hypermeta.families.method_defaults(env, method)`, one run: seed 73, lr 3e-4), built as
`hypermeta train` builds it: `Learner(cfg)`, `init_runs`, `compile_chunk`, then one chunk
call (eval_interval PPO updates and one evaluation), as in benchmarks/throughput.py. Every
process (`--one ENV METHOD`) sets the cache up with `compile_cache.setup()` from
HYPERMETA_COMPILE_CACHE, pointed at the configuration's temporary directory, and the
parent prints one JSON line per configuration:

    {"env", "method", "first_s", "second_s", "cache_mb", "second_hits", "identical",
     "first": {...}, "second": {...}}

- first_s / second_s: seconds to the first trained chunk, from the start of the process
  (before `import jax`) to the end of the first chunk call (its results ready). It holds the
  imports, building the Learner, initialising the runs (its own compiled program), tracing
  and lowering the chunk to XLA (every process does this: the cache saves only XLA's
  compilation), compiling it or loading it from the cache, and the chunk's own work.
- first / second: that time split up: "import_s", "init_s" (Learner + init_runs),
  "chunk_s" (compile_chunk + the first chunk call), and JAX's own totals over every program
  of the process: "trace_s" (Python to jaxpr), "lower_s" (jaxpr to an MLIR module),
  "compile_s" (XLA compilation, or loading from the cache on a hit); "cpu_s": the process's
  CPU seconds up to the end of the first chunk (less sensitive to a shared machine's load
  than the wall-clock figures; XLA's CPU compilation runs on one core); "work_s" is a second
  chunk call of the same length (the chunk's work without compilation; --no-work skips it);
  "hits" and "misses": cache events (a miss is a program written to the cache).
- cache_mb: size of the cache directory after both processes.
- identical: the first chunk's metrics and the trained states of both processes are
  bitwise equal (the cache does not change results).

    python benchmarks/compile_times.py        # grid-world rnn, rnn-hn, vi-hn; cheetah-dir rnn-hn
    python benchmarks/compile_times.py --env grid-world --methods rnn rnn-hn
    python benchmarks/compile_times.py --env cheetah-dir --methods rnn-hn --updates-per-chunk 2 [--physics c]

--env/--methods give the configurations as their product; without either, the four above.
Timings depend on the machine's load: run it on an otherwise idle machine.
"""

from __future__ import annotations

import time

T_PROCESS = time.perf_counter()  # before anything heavy is imported

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

DEFAULT_CONFIGS = [("grid-world", "rnn"), ("grid-world", "rnn-hn"), ("grid-world", "vi-hn"), ("cheetah-dir", "rnn-hn")]


def _digest(tree) -> str:
    """sha256 of every leaf's bytes, in tree order."""
    import jax
    import numpy as np

    h = hashlib.sha256()
    for leaf in jax.tree.leaves(tree):
        a = np.asarray(jax.random.key_data(leaf) if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key) else leaf)
        h.update(str((a.shape, a.dtype)).encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def measure(env: str, method: str, updates_per_chunk: int = 0, work: bool = True, physics: str = "") -> dict:
    """Time one configuration in this process (call it in a fresh process)."""
    import dataclasses

    t_import = time.perf_counter()
    import jax
    from jax import monitoring

    from hypermeta.compile_cache import setup
    from hypermeta.families import method_defaults
    from hypermeta.training.learner import Learner
    from hypermeta.training.loop import resolve_parallel_runs

    totals = {"trace_s": 0.0, "lower_s": 0.0, "compile_s": 0.0}
    events = {"/jax/core/compile/jaxpr_trace_duration": "trace_s",
              "/jax/core/compile/jaxpr_to_mlir_module_duration": "lower_s",
              "/jax/core/compile/backend_compile_duration": "compile_s"}
    counts = {"hits": 0, "misses": 0}

    def on_duration(event: str, duration: float, **_) -> None:
        if event in events:
            totals[events[event]] += duration

    def on_event(event: str, **_) -> None:
        if event == "/jax/compilation_cache/cache_hits":
            counts["hits"] += 1
        elif event == "/jax/compilation_cache/cache_misses":
            counts["misses"] += 1

    monitoring.register_event_duration_secs_listener(on_duration)
    monitoring.register_event_listener(on_event)
    cache = setup()  # as every hypermeta command does, from HYPERMETA_COMPILE_CACHE
    t_init = time.perf_counter()

    cfg = method_defaults(env, method)
    if updates_per_chunk:
        cfg = dataclasses.replace(cfg, eval_interval=updates_per_chunk)
    if physics:  # TrainConfig.physics: the MuJoCo backend (where this hypermeta has the option)
        cfg = dataclasses.replace(cfg, physics=physics)
    learner = Learner(cfg)
    states = learner.init_runs([s for s, _ in cfg.runs], [lr for _, lr in cfg.runs])
    jax.block_until_ready(states)
    t_chunk = time.perf_counter()
    chunk = learner.compile_chunk(resolve_parallel_runs(cfg.parallel_runs))
    states, metrics = chunk(states, cfg.eval_interval)
    jax.block_until_ready((states, metrics))
    t_end, cpu_s = time.perf_counter(), time.process_time()
    digest = _digest((metrics, states))
    work_s = None
    if work:
        t0 = time.perf_counter()
        jax.block_until_ready(chunk(states, cfg.eval_interval))
        work_s = round(time.perf_counter() - t0, 2)
    learner.collector.close()
    return {
        "env": env, "method": method, "updates_per_chunk": cfg.eval_interval,
        **({"physics": cfg.physics} if hasattr(cfg, "physics") else {}), "backend": jax.default_backend(),
        "cache": str(cache) if cache else None,
        "seconds": round(t_end - T_PROCESS, 2), "cpu_s": round(cpu_s, 2),
        "import_s": round(t_init - t_import, 2), "init_s": round(t_chunk - t_init, 2),
        "chunk_s": round(t_end - t_chunk, 2), **{k: round(v, 2) for k, v in totals.items()},
        "work_s": work_s, **counts, "digest": digest,
    }


def _size_mb(path: Path) -> float:
    return round(sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", nargs="+", default=None, help="registered environment names (default: see above)")
    parser.add_argument("--methods", nargs="+", default=None, help="method names (default: see above)")
    parser.add_argument("--updates-per-chunk", type=int, default=0,
                        help="PPO updates per chunk (0 = the family's eval_interval: 5 on grid-worlds, 25 on MuJoCo)")
    parser.add_argument("--physics", default="", help="MuJoCo physics (TrainConfig.physics); default: the family's")
    parser.add_argument("--no-work", action="store_true", help="skip the second chunk call (work_s)")
    parser.add_argument("--one", nargs=2, metavar=("ENV", "METHOD"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.updates_per_chunk < 0:
        parser.error("--updates-per-chunk must be >= 0")

    if args.one is not None:  # the child: one process of one configuration
        print(json.dumps(measure(*args.one, args.updates_per_chunk, not args.no_work, args.physics)), flush=True)
        return 0

    if args.env is None and args.methods is None:
        configs = DEFAULT_CONFIGS
    else:
        configs = [(e, m) for e in (args.env or ["grid-world"]) for m in (args.methods or ["rnn", "rnn-hn", "vi-hn"])]
    failed = 0
    for env, method in configs:
        with tempfile.TemporaryDirectory(prefix="hypermeta-compile-cache-") as tmp:
            cache = Path(tmp) / "jax"
            child_env = {**os.environ, "HYPERMETA_COMPILE_CACHE": str(cache)}
            cmd = [sys.executable, __file__, "--one", env, method, "--updates-per-chunk", str(args.updates_per_chunk)]
            cmd += (["--no-work"] if args.no_work else []) + (["--physics", args.physics] if args.physics else [])
            results = []
            for _ in range(2):
                proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=child_env)  # stderr passes through
                lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
                if proc.returncode != 0 or not lines:
                    break
                results.append(json.loads(lines[-1]))
            if len(results) < 2:
                failed += 1
                print(json.dumps({"env": env, "method": method, "error": f"exit code {proc.returncode}"}), flush=True)
                continue
            first, second = results
            for r in results:
                for k in ("env", "method", "cache"):
                    r.pop(k)
            print(json.dumps({
                "env": env, "method": method, "first_s": first["seconds"], "second_s": second["seconds"],
                "cache_mb": _size_mb(cache), "second_hits": second["hits"],
                "identical": first.pop("digest") == second.pop("digest"), "first": first, "second": second,
            }), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
