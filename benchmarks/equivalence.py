"""Same seed, same config -> the same metrics: a guard for refactors that must not change behaviour.

    python benchmarks/equivalence.py record DIR          # train every case below into DIR/<case>/
    python benchmarks/equivalence.py compare BEFORE AFTER  # metrics.csv of each case, column by column
    python benchmarks/equivalence.py chaos cheetah-dir    # evaluation returns under 1e-7 parameter noise

Record once with the code before a refactor (e.g. from a `git worktree` of the old commit,
`PYTHONPATH=<worktree>/src python benchmarks/equivalence.py record before`) and once after,
then compare. Each case trains a few updates with the paper's settings for its environment
and method (a one-row evaluation per update), so every code path of a method runs: the JAX
and host collectors, PPO with encoder replay, the ELBO, pre-training and the policy reset,
the auxiliary loss and the latent-gradient analysis. `frames_per_second` is ignored.

MuJoCo physics is chaotic: a relative change of 1e-7 in the parameters (float rounding of a
reordered sum) moves Cheetah-Dir's evaluation return by 1-2 after one update (measured
2026-12-02: -24.69 -> -25.71, -23.34; 1e-6: -23.01), and the next rollouts diverge with it.
For the MuJoCo and Meta-World cases ("chaotic") only the first update is compared: its
rollout comes from identical initial parameters, so its training statistics must agree to
float tolerance; later rows and every evaluation return are printed, not judged.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import math
import sys
from pathlib import Path

# (name, env, method, updates, overrides of TrainConfig / its inference config)
CASES: list[tuple[str, str, str, int, dict]] = [
    ("grid_rnn", "grid-world", "rnn", 2, {}),
    ("grid_rnn-s", "grid-world", "rnn-s", 2, {"grad_info": True}),
    ("grid_rnn-hn", "grid-world", "rnn-hn", 3, {}),
    ("grid_vi", "grid-world", "vi", 2, {"grad_info": True}),
    ("grid_vi-hn", "grid-world", "vi-hn", 3, {}),
    ("grid_ti-hn", "grid-world", "ti-hn", 4, {"pretrain_updates": 2}),
    ("grid_ti-pp-hn", "grid-world", "ti-pp-hn", 4, {"pretrain_updates": 2}),
    ("grid_bi-pp-hn", "grid-world", "bi-pp-hn", 3, {"pretrain_updates": 1}),
    ("grid_multi-hn", "grid-world", "multi-hn", 2, {}),
    ("grid_rnn-hn-bi", "grid-world", "rnn-hn-bi", 3, {"pretrain_updates": 1, "aux_weight": 1.0}),
    ("cheetah-dir_rnn-hn", "cheetah-dir", "rnn-hn", 2, {"eval_trials": 4}),
    ("cheetah-dir_vi-hn", "cheetah-dir", "vi-hn", 2, {"eval_trials": 4}),  # sub-sampled ELBO
    ("walker_rnn-hn", "walker-params", "rnn-hn", 2, {"eval_trials": 4}),  # trials end at different steps
    ("ml10_rnn-hn", "ml10", "rnn-hn", 2, {"eval_trials": 2}),
]
INFERENCE_FIELDS = ("pretrain_updates", "aux_weight")
CHAOTIC_ENVS = ("cheetah-dir", "walker-params", "ml10")
EVALUATION = ("return", "success")  # column names with these words are evaluation results


def config(env: str, method: str, updates: int, overrides: dict):
    try:
        from hypermeta.families import method_defaults
    except ImportError:  # the code before families.py existed
        from hypermeta.config import method_defaults

    cfg = method_defaults(env, method)
    inference = {k: v for k, v in overrides.items() if k in INFERENCE_FIELDS}
    top = {k: v for k, v in overrides.items() if k not in INFERENCE_FIELDS}
    return dataclasses.replace(
        cfg, frames=updates * cfg.ppo.frames_per_update, eval_interval=1, seeds=(73,),
        inference=dataclasses.replace(cfg.inference, **inference), **top,
    )


def record(out: Path, only: list[str]) -> None:
    from hypermeta.training.loop import train

    for name, env, method, updates, overrides in CASES:
        if only and name not in only:
            continue
        target = out / name
        if (target / "summary.json").exists():
            print(f"{name}: already recorded", flush=True)
            continue
        train(config(env, method, updates, overrides), target, show_progress=False)
        print(f"{name}: recorded", flush=True)


def read(path: Path) -> list[dict[str, str]]:
    with open(path / "metrics.csv") as f:
        return list(csv.DictReader(f))


def compare(before: Path, after: Path, rtol: float, atol: float) -> int:
    """Print the largest difference per case (relative, and where |x - y| > atol + rtol max(|x|, |y|)
    fails); the number of cases that differ."""
    failed = 0
    for name, env, *_ in CASES:
        if not (before / name / "summary.json").exists() or not (after / name / "summary.json").exists():
            print(f"{name:22s} missing")
            failed += 1
            continue
        a, b = read(before / name), read(after / name)
        worst, where, ok = 0.0, "", True
        if len(a) != len(b) or set(a[0]) != set(b[0]):
            print(f"{name:22s} DIFFERENT rows or columns: {len(a)} vs {len(b)}, {sorted(set(a[0]) ^ set(b[0]))}")
            failed += 1
            continue
        chaotic = env in CHAOTIC_ENVS
        for i, (ra, rb) in enumerate(zip(a, b, strict=True)):
            for col in ra:
                if col == "frames_per_second" or (chaotic and (i > 0 or any(w in col for w in EVALUATION))):
                    continue
                x, y = float(ra[col]), float(rb[col])
                if math.isnan(x) and math.isnan(y):
                    continue
                rel = abs(x - y) / max(abs(x), abs(y), 1e-12)
                ok &= abs(x - y) <= atol + rtol * max(abs(x), abs(y))
                if rel > worst:
                    worst, where = rel, f"row {i} {col}: {x:.6g} vs {y:.6g}"
        failed += not ok
        scope = " (first update's training statistics; chaotic physics)" if chaotic else ""
        print(f"{name:22s} {'same' if ok else 'DIFFERENT'}  max relative difference {worst:.2e} {where}{scope}")
    return failed


def chaos(env: str) -> None:
    """Print how an evaluation return moves when the parameters after one update change by
    float-rounding amounts (relative 1e-7, twice, and 1e-6)."""
    import jax
    import jax.numpy as jnp

    from hypermeta.training.learner import Learner

    cfg = config(env, "rnn-hn", 1, {"eval_trials": 4})
    learner = Learner(cfg)
    state = jax.jit(learner.init)(jnp.asarray(73), jnp.asarray(3e-4, jnp.float32))
    state, _ = jax.jit(learner.train_update)(state)
    evaluate = jax.jit(learner.evaluate)
    key = jax.random.PRNGKey(1)
    base = float(evaluate(state.params, state.norms, key).sum())
    for i, rel in enumerate([1e-7, 1e-7, 1e-6]):
        noise_key = jax.random.fold_in(jax.random.PRNGKey(9), i)
        params = jax.tree.map(lambda p, k=noise_key, r=rel: p * (1 + r * jax.random.normal(k, p.shape)), state.params)
        print(f"relative perturbation {rel:g}: return {base:.3f} -> {float(evaluate(params, state.norms, key).sum()):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record")
    rec.add_argument("out", type=Path)
    rec.add_argument("--only", nargs="*", default=[])
    cmp_ = sub.add_parser("compare")
    cmp_.add_argument("before", type=Path)
    cmp_.add_argument("after", type=Path)
    cmp_.add_argument("--rtol", type=float, default=1e-4)
    cmp_.add_argument("--atol", type=float, default=1e-6)
    sub.add_parser("chaos").add_argument("env")
    args = parser.parse_args()
    if args.command == "record":
        record(args.out, args.only)
    elif args.command == "chaos":
        chaos(args.env)
    else:
        sys.exit(1 if compare(args.before, args.after, args.rtol, args.atol) else 0)


if __name__ == "__main__":
    main()
