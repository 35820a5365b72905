"""The same small sweep locally and on a local Ray cluster (`--ray local`): wall times, and how
many cells ran at once.

Runs `hypermeta sweep` twice in fresh processes, as a user would, into a temporary directory:

    hypermeta sweep --env ENV --methods M... --lr LR... --seeds S... --frames N --out A
    hypermeta sweep ... --out B --ray local          # a throwaway cluster of this machine's cores

and prints one JSON line per sweep, {"mode", "seconds", "cells"}, then one for the Ray sweep's
cells, read from OUT/.cluster/cells/*.json (when each attempt started) and each cell's
summary.json (its wall_seconds, from the start of training to summary.json):

    {"cells", "cell_seconds" (sum), "max_cells_at_once", "ray_overhead_seconds", "cell_compile_seconds"}

- ray_overhead_seconds: the Ray sweep's wall time minus the local sweep's.
- max_cells_at_once: the most cells whose [start, start + wall_seconds] intervals overlap
  (2 on a 2-core machine: two CPU cells train side by side).

    python benchmarks/ray_sweep.py                                     # rnn, rnn-hn x 2 lrs, 48k frames
    python benchmarks/ray_sweep.py --frames 9600 --methods rnn --lr 1e-3 3e-4 1e-4 3e-5
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(argv: list[str]) -> float:
    t0 = time.time()
    subprocess.run([sys.executable, "-m", "hypermeta.cli", *argv], check=True, stdout=subprocess.DEVNULL)
    return time.time() - t0


def cell_intervals(out: Path) -> list[tuple[float, float, float]]:
    """(start, end, compile seconds) of every cell's last attempt."""
    found = []
    for record in sorted((out / ".cluster" / "cells").glob("*.json")):
        start = json.loads(record.read_text())["attempts"][-1]["time"]
        name = record.stem.split("__")
        summary = json.loads(out.joinpath(*name, "summary.json").read_text())
        found.append((start, start + summary["wall_seconds"], summary["compile_seconds"]))
    return found


def most_at_once(intervals: list[tuple[float, float, float]]) -> int:
    events = sorted([(s, 1) for s, _, _ in intervals] + [(e, -1) for _, e, _ in intervals])
    now = best = 0
    for _, step in events:
        now += step
        best = max(best, now)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="grid-world")
    parser.add_argument("--methods", nargs="+", default=["rnn", "rnn-hn"])
    parser.add_argument("--lr", nargs="+", default=["1e-3", "3e-4"])
    parser.add_argument("--seeds", nargs="+", default=["73"])
    parser.add_argument("--frames", default="48000")
    args = parser.parse_args()
    sweep = ["sweep", "--env", args.env, "--methods", *args.methods, "--lr", *args.lr, "--seeds", *args.seeds,
             "--frames", args.frames]
    with tempfile.TemporaryDirectory() as tmp:
        local = timed([*sweep, "--out", f"{tmp}/local"])
        print(json.dumps({"mode": "local", "seconds": round(local, 1), "cells": None}), flush=True)
        on_ray = timed([*sweep, "--out", f"{tmp}/ray", "--ray", "local"])
        cells = cell_intervals(Path(tmp) / "ray")
        print(json.dumps({"mode": "ray local", "seconds": round(on_ray, 1), "cells": len(cells)}), flush=True)
        print(json.dumps({
            "cells": len(cells), "cell_seconds": round(sum(e - s for s, e, _ in cells), 1),
            "max_cells_at_once": most_at_once(cells), "ray_overhead_seconds": round(on_ray - local, 1),
            "cell_compile_seconds": [round(c, 1) for _, _, c in cells]}))


if __name__ == "__main__":
    main()
