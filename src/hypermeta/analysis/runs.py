"""Read run directories, from any number of places and machines, into one table."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd

from hypermeta.config import TrainConfig
from hypermeta.errors import UsageError
from hypermeta.methods.registry import get_method, run_label

KEY = ["env", "method", "state_embed", "lr", "seed"]
"""What identifies a run across directories (state_embed: the policy's state-embedding size, 0
for RNN, whose policy has none; `hypermeta sweep --state-embeds` tunes it like the lr)."""


def find_run_dirs(paths: list[Path]) -> list[Path]:
    """Every run directory (a folder with config.json) at or below the given paths."""
    found: list[Path] = []
    for path in map(Path, paths):
        if not path.exists():
            raise UsageError(f"{path}: no such directory")
        if (path / "config.json").is_file():
            found.append(path)
        else:
            found.extend(sorted(p.parent for p in path.rglob("config.json") if "checkpoints" not in p.parts))
    return list(dict.fromkeys(p.resolve() for p in found))


def load_run(path: Path) -> pd.DataFrame:
    """metrics.csv of one run directory with env, method (canonical) and run_dir added.

    `diverged` (bool) marks the evaluations of a run at and after the chunk where it was
    first seen non-finite; False throughout for directories written before it existed."""
    try:
        cfg = TrainConfig.from_dict(json.loads((path / "config.json").read_text()))
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise UsageError(f"{path / 'config.json'} is not a hypermeta run configuration ({e})") from None
    metrics = path / "metrics.csv"
    if not metrics.is_file() or metrics.stat().st_size == 0:
        return pd.DataFrame()
    # A run that is writing (or crashed mid-write) may end in a torn line: every complete
    # row ends with a newline, so drop whatever follows the last one.
    text = metrics.read_text()
    df = pd.read_csv(io.StringIO(text[: text.rfind("\n") + 1]))
    df.insert(0, "env", cfg.env)
    method = get_method(cfg.method)
    df.insert(1, "method", run_label(method.name, cfg.model.sequence))  # another sequence model, another method
    df.insert(2, "state_embed", cfg.model.policy_state_embed if method.reads_state else 0)
    df["diverged"] = df["diverged"].fillna(0).astype(bool) if "diverged" in df else False
    df["run_dir"] = str(path)
    df["finished"] = (path / "summary.json").is_file()
    return df


def common_budget(df: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """Cut every environment's runs to the frames its shortest run reached.

    Average and final returns grow with training, so methods trained for different
    budgets (an unfinished run, a merged directory) are compared on equal frames.
    Returns the cut table and {env: budget} for the environments that were cut.
    """
    reach = df.groupby(KEY)["frames"].max().groupby("env").min()
    cut = {env: int(b) for env, b in reach.items() if (df.loc[df["env"] == env, "frames"] > b).any()}
    keep = df["frames"] <= df["env"].map(reach)
    return df[keep].reset_index(drop=True), cut


def load_runs(paths: list[Path]) -> pd.DataFrame:
    """All evaluations of all runs below `paths`, merged into one long table.

    Runs are identified by (env, method, lr, seed), so sweeps split across machines
    (say seeds 73 and 20 on one, seed 3 on another) merge into one table. The same
    run found in two directories is refused rather than silently double-counted.
    """
    dirs = find_run_dirs(paths)
    frames = [df for df in (load_run(d) for d in dirs) if not df.empty]
    if not frames:
        raise UsageError(f"no run directories with metrics under {', '.join(map(str, paths))}")
    df = pd.concat(frames, ignore_index=True)
    owners = df.groupby(KEY)["run_dir"].unique()
    clashes = owners[owners.map(len) > 1]
    if len(clashes):
        (env, method, _, lr, seed), where = next(iter(clashes.items()))
        raise UsageError(
            f"{len(clashes)} run(s) appear in more than one directory, e.g. {method} on {env} lr={lr:g} seed={seed} "
            f"in {' and '.join(where)}; pass only one copy of each run"
        )
    return df.sort_values([*KEY, "frames"], ignore_index=True)
