"""Cells sharing a machine's cores: 1 cell of 2 CPUs against 2 cells of 1 CPU each (`--cell-cpus`).

Runs two sweeps on a throwaway Ray cluster of this machine (`--ray local`, --cores CPUs),
into a temporary directory:

    one cell,  --cell-cpus 2: ENV, METHOD, one lr             (XLA and the C physics on 2 threads)
    two cells, --cell-cpus 1: ENV, METHOD, two lrs side by side (each on 1 thread: PJRT_NPROC=1)

and prints one JSON line per sweep: {"mode", "cells", "cell_cpus", "seconds", "frames_per_second"
(per cell: the median of its metrics.csv chunks but the first, which compiles), "total_frames_per_second"
(their sum: the machine's throughput)}. Measure on an otherwise idle machine.

    python benchmarks/cell_cpus.py                                  # grid-world rnn, 48k frames per run
    python benchmarks/cell_cpus.py --env walker-params --frames 96000
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def run(env: str, method: str, lrs: tuple[float, ...], frames: int, cell_cpus: int, cores: int, out: Path) -> dict:
    import ray

    from hypermeta.sweeps.cells import ClusterConfig
    from hypermeta.sweeps.cluster import measured_speed, run_cluster_sweeps
    from hypermeta.sweeps.sweep import SweepConfig

    sweep = SweepConfig(env=env, methods=(method,), lr=lrs, seeds=(73,), frames=frames)
    ray.init(address="local", num_cpus=cores, include_dashboard=False, log_to_driver=False, logging_level="warning")
    try:
        t0 = time.time()
        cells = run_cluster_sweeps([sweep], out, ClusterConfig(ray="local", cell_cpus=cell_cpus), show_progress=False)
        seconds = time.time() - t0
    finally:
        ray.shutdown()
    speeds = [measured_speed(c) or 0.0 for c in cells]
    return {"mode": f"{len(cells)} x {cell_cpus} CPU", "cells": len(cells), "cell_cpus": cell_cpus,
            "seconds": round(seconds, 1), "frames_per_second": [round(s) for s in speeds],
            "total_frames_per_second": round(sum(speeds))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="grid-world")
    parser.add_argument("--method", default="rnn")
    parser.add_argument("--frames", type=int, default=48000)
    parser.add_argument("--cores", type=int, default=2, help="CPUs of the local cluster (the cells share them)")
    args = parser.parse_args()
    from hypermeta.sweeps.cluster import driver_on_cpu

    driver_on_cpu()
    with tempfile.TemporaryDirectory() as tmp:
        one = run(args.env, args.method, (1e-3,), args.frames, args.cores, args.cores, Path(tmp) / "one")
        print(json.dumps(one), flush=True)
        two = run(args.env, args.method, (1e-3, 3e-4), args.frames, args.cores // 2 or 1, args.cores, Path(tmp) / "two")
        print(json.dumps(two), flush=True)


if __name__ == "__main__":
    main()
