"""Per configuration of issue 27's learning runs: mean evaluation return over each run's first
and last 5 evaluations, and the last-5 means per seed."""
import csv
import sys
from collections import defaultdict
from pathlib import Path

for d in sys.argv[1:]:
    p = Path(d) / "metrics.csv"
    if not p.exists():
        print(f"{d}: missing"); continue
    runs = defaultdict(list)
    for r in csv.DictReader(open(p)):
        runs[r["seed"]].append(float(r["meta_episode_return"]))
    first = [sum(v[:5]) / len(v[:5]) for v in runs.values()]
    last = {s: sum(v[-5:]) / len(v[-5:]) for s, v in runs.items()}
    frames = max(int(r["frames"]) for r in csv.DictReader(open(p)))
    print(f"{Path(d).name:28s} frames {frames:7d}  first5 {sum(first)/len(first):8.2f}  last5 {sum(last.values())/len(last):8.2f}"
          f"  per seed {', '.join(f'{s}: {v:.2f}' for s, v in last.items())}")
