"""Statistics of the paper's evaluation protocol (Beck et al. 2023, original `visualize_runs.py`).

Protocol: per-run metric -> learning rate chosen by the mean over seeds of that metric ->
trailing moving average of each run -> downsample to 200 points -> 68 % percentile-bootstrap
CI of the mean across seeds. On top of that, rliable's aggregate statistics over environments
(IQM, mean, median, optimality gap, probability of improvement) with stratified-bootstrap CIs.

Divergence (a table with a boolean `diverged` column, as `load_runs` gives): a learning rate
with a diverged run in any seed cannot be chosen as the best. The protocol averages returns
over seeds, and a diverged run's returns are not a learning result, so such an lr has no valid
mean; dropping only the diverged seed would favour unstable learning rates. Everything built
on the best lr (curves, bars, aggregates) therefore holds no diverged run.

Everything here is a pure function of its inputs (random streams are seeded from arguments).
Only the report code imports this module, after checking that the `report` extra is installed,
so the heavy imports sit at the top.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pandas as pd
import scipy.stats
from rliable import library as rly_library
from rliable import metrics as rly_metrics

from hypermeta.analysis.smoothing import SMOOTHING_FRACTION, smooth

CONFIDENCE = 0.68
METRICS = ("average", "final", "auc")

RUN_KEYS = ["env", "method", "lr", "seed"]
GROUP_KEYS = ["env", "method", "lr"]
TUNED = ["state_embed"]
"""Hyperparameters chosen like the lr, per (env, method), where the table has them."""


def run_keys(df: pd.DataFrame) -> list[str]:
    """RUN_KEYS with the tuned hyperparameters that `df` has (before lr)."""
    return ["env", "method", *(c for c in TUNED if c in df.columns), "lr", "seed"]


def group_keys(df: pd.DataFrame) -> list[str]:
    """GROUP_KEYS with the tuned hyperparameters that `df` has: one configuration."""
    return run_keys(df)[:-1]
AGGREGATE_STATISTICS = ("IQM", "Mean", "Median", "Optimality gap")


# --------------------------------------------------------------------------- curves


def bootstrap_ci(
    samples: np.ndarray,
    confidence: float = CONFIDENCE,
    n_resamples: int = 1000,
    seed: int = 0,
    axis: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) of the percentile-bootstrap CI of the mean along `axis` (scipy.stats.bootstrap).

    1-D input gives 0-d results, 2-D input (e.g. seeds x points) gives per-point bounds.
    Where there are fewer than 2 samples along `axis` (scipy refuses to bootstrap one sample)
    or all samples are equal, low = high = the mean: the data give no spread to resample.
    NaN in a slice gives NaN bounds for that slice. Deterministic for a given seed.
    """
    samples = np.asarray(samples, dtype=float)
    mean = samples.mean(axis=axis)
    if samples.shape[axis] < 2:
        return mean.copy(), mean.copy()
    with warnings.catch_warnings():
        # The only warning of the percentile method is DegenerateDataWarning, raised when a
        # slice contains NaN; NaN bounds say that already.
        warnings.simplefilter("ignore", scipy.stats.DegenerateDataWarning)
        res = scipy.stats.bootstrap(
            (samples,),
            np.mean,
            n_resamples=n_resamples,
            vectorized=True,
            axis=axis,
            confidence_level=confidence,
            method="percentile",
            rng=np.random.default_rng(seed),
        )
    low = np.asarray(res.confidence_interval.low, dtype=float)
    high = np.asarray(res.confidence_interval.high, dtype=float)
    # Resampled means of identical values can differ from `mean` in the last bit; pin them.
    constant = np.ptp(samples, axis=axis) == 0
    low = np.where(constant, mean, low)
    high = np.where(constant, mean, high)
    return low, high


# --------------------------------------------------------------------------- per-run scores


def run_score(frames: np.ndarray, returns: np.ndarray, metric: str = "average") -> float:
    """One number per run, from its evaluation curve (points in frame order).

    'average': mean return over the whole run (the paper's default for choosing the lr).
    'final': last value of `smooth(returns)`.
    'auc': trapezoid of returns over frames divided by the frame span, so it is in return
    units (a constant curve scores its value); a single point (or zero span) scores its mean.
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {METRICS}")
    frames = np.asarray(frames, dtype=float)
    returns = np.asarray(returns, dtype=float)
    if returns.ndim != 1 or frames.shape != returns.shape:
        raise ValueError(
            f"frames and returns must be 1-D of equal length, got {frames.shape} and {returns.shape}"
        )
    if returns.size == 0:
        raise ValueError("cannot score a run without evaluations")
    if metric == "average":
        return float(returns.mean())
    if metric == "final":
        return float(smooth(returns)[-1])
    span = frames[-1] - frames[0]
    if returns.size == 1 or span == 0:
        return float(returns.mean())
    return float(np.trapezoid(returns, frames) / span)


def run_scores(df: pd.DataFrame, metric: str = "average") -> pd.DataFrame:
    """One row per run (env, method, lr, seed) with column 'score' = run_score(metric).

    `df` is the long table of evaluations (columns env, method, lr, seed, frames,
    meta_episode_return; others ignored). Each run is sorted by frames before scoring.
    If `df` has a `diverged` column, the output has one too: whether the run diverged
    (its score is then computed as usual but is not a learning result).
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {METRICS}")
    flagged = "diverged" in df.columns
    rows = []
    for key, run in df.groupby(run_keys(df), sort=True):
        run = run.sort_values("frames", kind="stable")
        score = run_score(run["frames"].to_numpy(), run["meta_episode_return"].to_numpy(), metric)
        rows.append((*key, score, *([bool(run["diverged"].any())] if flagged else [])))
    return pd.DataFrame(rows, columns=[*run_keys(df), "score", *(["diverged"] if flagged else [])])


def diverged_runs(df: pd.DataFrame) -> pd.DataFrame:
    """One row per diverged run: env, method, lr, seed, update (the first evaluation marked
    diverged) and frames there; empty if `df` has no `diverged` column or no diverged run."""
    columns = [*run_keys(df), "update", "frames"]
    if "diverged" not in df.columns or not df["diverged"].any():
        return pd.DataFrame(columns=columns)
    marked = df[df["diverged"].astype(bool)].sort_values([*run_keys(df), "frames"], kind="stable")
    return marked.drop_duplicates(run_keys(df), keep="first")[columns].reset_index(drop=True)


def without_diverged_lrs(df: pd.DataFrame) -> pd.DataFrame:
    """The rows of `df` whose (env, method, lr) has no diverged run in any seed."""
    if "diverged" not in df.columns:
        return df
    bad = df.groupby(group_keys(df))["diverged"].transform("any").astype(bool)
    return df[~bad]


def _best_per_group(means: pd.DataFrame, value: str) -> pd.DataFrame:
    """Row of the best lr per (env, method): highest `value`; ties go to the larger lr.

    The tie rule is arbitrary but deterministic (sorting is stable and total).
    """
    tuned = [c for c in TUNED if c in means.columns]
    ordered = means.sort_values(["env", "method", value, "lr", *tuned], ascending=[True, True, False, False, *[False] * len(tuned)],
                                kind="stable")
    return ordered.drop_duplicates(["env", "method"], keep="first").reset_index(drop=True)


def best_lrs(df: pd.DataFrame, metric: str = "average") -> pd.DataFrame:
    """Per (env, method): the lr with the highest mean over seeds of run_score(metric).

    Ties (exactly equal means) go to the larger lr. Columns: env, method, lr, score, seeds.
    An lr with a diverged run (`diverged` column) is not eligible; an (env, method) whose
    every lr diverged in some seed has no row.
    """
    scores = run_scores(without_diverged_lrs(df), metric)
    means = scores.groupby(group_keys(scores), sort=True)["score"].agg(score="mean", seeds="count").reset_index()
    return _best_per_group(means, "score")[[*group_keys(scores), "score", "seeds"]]


def select_best(df: pd.DataFrame, metric: str = "average") -> pd.DataFrame:
    """The rows of `df` (index kept) that belong to each (env, method)'s best lr."""
    best = best_lrs(df, metric)
    keys = group_keys(df)
    chosen = pd.MultiIndex.from_frame(best[keys])
    mask = pd.MultiIndex.from_frame(df[keys]).isin(chosen)
    return df[mask]


# --------------------------------------------------------------------------- curves with CIs


def _downsample_indices(n: int, max_points: int | None) -> np.ndarray:
    """At most `max_points` evenly spaced indices into range(n), first and last included."""
    if max_points is None or n <= max_points:
        return np.arange(n)
    if max_points < 1:
        raise ValueError(f"max_points must be >= 1, got {max_points}")
    if max_points == 1:
        return np.array([n - 1])
    # n > max_points, so consecutive rounded positions are >= 1 apart: exactly max_points indices.
    return np.round(np.linspace(0, n - 1, max_points)).astype(int)


def _smoothed_seeds(df: pd.DataFrame, fraction: float, x: str, y: str) -> list[pd.Series]:
    """Each seed's `y` sorted by `x` and smoothed over its own points (index: x), by seed."""
    smoothed: list[pd.Series] = []
    for seed, run in df.groupby("seed", sort=True):
        run = run.sort_values(x, kind="stable")
        xs = run[x].to_numpy()
        if len(np.unique(xs)) != len(xs):
            raise ValueError(f"seed {seed} has repeated {x} values; pass one (env, method, lr) group")
        smoothed.append(pd.Series(smooth(run[y].to_numpy(), fraction), index=xs))
    return smoothed


def _common_index(smoothed: list[pd.Series]) -> pd.Index:
    """The x values present in every seed's curve, sorted."""
    common = smoothed[0].index
    for s in smoothed[1:]:
        common = common.intersection(s.index)
    return common.sort_values()


def _first_reach(curve: pd.Series, threshold: float) -> float:
    """The first x at which `curve` is at least `threshold` (NaN if never)."""
    hit = np.flatnonzero(curve.to_numpy() >= threshold)
    return float(curve.index[hit[0]]) if len(hit) else float("nan")


def frames_to_reach(
    df: pd.DataFrame,
    threshold: float,
    fraction: float = SMOOTHING_FRACTION,
    x: str = "frames",
    y: str = "meta_episode_return",
) -> pd.DataFrame:
    """Sample efficiency: the `x` at which each configuration's smoothed curve first reaches
    `threshold`, per (env, method[, state_embed], lr) of `df` (give it `select_best`'s rows).

    Curves are smoothed as in the figures (per seed, trailing `fraction`). Columns: the group
    keys, `mean_curve` (first x where the mean over seeds of the smoothed curves, on the x
    every seed has, reaches the threshold), `per_seed` (a tuple: each seed's own first x, by
    seed; NaN where a seed never reaches it), `reached` (how many seeds did) and `seeds`.
    NaN in `mean_curve`: the mean curve never reaches the threshold within the run.
    """
    rows = []
    for key, group in df.groupby(group_keys(df), sort=True):
        smoothed = _smoothed_seeds(group, fraction, x, y)
        common = _common_index(smoothed)
        mean = pd.Series(np.mean([s.loc[common].to_numpy() for s in smoothed], axis=0), index=common)
        per_seed = tuple(_first_reach(s, threshold) for s in smoothed)
        rows.append((*key, _first_reach(mean, threshold), per_seed, int(np.isfinite(per_seed).sum()), len(smoothed)))
    return pd.DataFrame(rows, columns=[*group_keys(df), "mean_curve", "per_seed", "reached", "seeds"])


def curve_ci(
    df: pd.DataFrame,
    fraction: float = SMOOTHING_FRACTION,
    confidence: float = CONFIDENCE,
    x: str = "frames",
    y: str = "meta_episode_return",
    max_points: int | None = 200,
) -> pd.DataFrame:
    """Mean learning curve of ONE (env, method, lr) group across seeds, with a bootstrap CI.

    Each seed's curve is sorted by x and smoothed over its own points (as in the paper), then
    only the x values present in every seed are kept, downsampled to at most `max_points`
    evenly spaced points, and per x the mean and `bootstrap_ci` across seeds are computed.
    Columns: <x>, mean, low, high, seeds. A repeated x within one seed raises ValueError
    (it usually means several lrs or groups were passed together).
    """
    smoothed = _smoothed_seeds(df, fraction, x, y)
    if not smoothed:
        return pd.DataFrame(columns=[x, "mean", "low", "high", "seeds"])
    common = _common_index(smoothed)
    common = common[_downsample_indices(len(common), max_points)]
    matrix = np.stack([s.loc[common].to_numpy() for s in smoothed])  # seeds x points
    low, high = bootstrap_ci(matrix, confidence=confidence, axis=0)
    return pd.DataFrame(
        {x: common.to_numpy(), "mean": matrix.mean(axis=0), "low": low, "high": high, "seeds": len(smoothed)}
    )


def final_scores_ci(df: pd.DataFrame, metric: str = "final", confidence: float = CONFIDENCE) -> pd.DataFrame:
    """Per (env, method, lr): mean over seeds of run_score(metric) and its bootstrap CI.

    Columns: env, method, lr, mean, low, high, seeds (the paper's bar chart, 68 % CI).
    """
    scores = run_scores(df, metric)
    rows = []
    for key, group in scores.groupby(group_keys(scores), sort=True):
        values = group.sort_values("seed")["score"].to_numpy()
        low, high = bootstrap_ci(values, confidence=confidence)
        rows.append((*key, float(values.mean()), float(low), float(high), len(values)))
    return pd.DataFrame(rows, columns=[*group_keys(scores), "mean", "low", "high", "seeds"])


# --------------------------------------------------------------------------- across environments


def normalized_scores(scores: pd.DataFrame, references: dict[str, tuple[float, float]]) -> pd.DataFrame:
    """Copy of `scores` (run_scores output) with 'normalized' = (score - low) / (high - low).

    `references` maps env -> (low, high), e.g. (random, Bayes-optimal) returns. Envs missing
    from it are min-max normalized over all runs of that env in `scores` (all methods and lrs),
    which makes them comparable only within this table; if all those runs score the same,
    their normalized score is 0.0. A reference with high == low raises ValueError.
    """
    out = scores.copy()
    out["normalized"] = np.nan
    for env, idx in out.groupby("env", sort=True).groups.items():
        values = out.loc[idx, "score"].astype(float)
        if env in references:
            low, high = (float(v) for v in references[env])
            if high == low:
                raise ValueError(f"reference returns of {env!r} are equal ({low}); cannot normalize")
        else:
            low, high = float(values.min()), float(values.max())
            if high == low:
                out.loc[idx, "normalized"] = 0.0
                continue
        out.loc[idx, "normalized"] = (values - low) / (high - low)
    return out


@contextmanager
def _seeded_global_numpy(seed: int) -> Iterator[None]:
    """Seed numpy's global RNG for the block, then restore it.

    rliable draws its bootstrap indices with `np.random.choice` (the global RNG), ignoring the
    `random_state` it accepts (which only reaches arch, and arch deprecates it); seeding the
    global RNG is the only way to make its CIs reproducible. Restoring keeps callers unaffected.
    """
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def _aggregate_vector(scores: np.ndarray) -> np.ndarray:
    """IQM, mean, median and optimality gap of a (runs x envs) matrix, in AGGREGATE_STATISTICS order."""
    return np.array(
        [
            rly_metrics.aggregate_iqm(scores),
            rly_metrics.aggregate_mean(scores),
            rly_metrics.aggregate_median(scores),
            rly_metrics.aggregate_optimality_gap(scores),
        ]
    )


def _score_matrices(normalized: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per method a (runs x envs) matrix of 'normalized', envs in sorted order."""
    data = normalized
    if "lr" in data.columns:
        # Several lrs of one (env, method): keep the best by mean score, same rule as best_lrs.
        value = "score" if "score" in data.columns else "normalized"
        keys = group_keys(data)
        means = data.groupby(keys, sort=True)[value].mean().reset_index()
        chosen = pd.MultiIndex.from_frame(_best_per_group(means, value)[keys])
        data = data[pd.MultiIndex.from_frame(data[keys]).isin(chosen)]
    envs = sorted(data["env"].unique())
    matrices: dict[str, np.ndarray] = {}
    for method, by_method in data.groupby("method", sort=True):
        missing = sorted(set(envs) - set(by_method["env"]))
        if missing:
            raise ValueError(f"method {method!r} has no runs on {missing}; aggregates need every env")
        columns = [
            by_method[by_method["env"] == env].sort_values("seed", kind="stable")["normalized"].to_numpy(dtype=float)
            for env in envs
        ]
        # rliable needs a rectangular matrix: keep the first n runs (by seed) of every env.
        n = min(len(c) for c in columns)
        if n < 2:
            raise ValueError(
                f"method {method!r} has {n} run(s) on some env; bootstrap CIs need >= 2 runs per env"
            )
        matrices[str(method)] = np.stack([c[:n] for c in columns], axis=1)
    return matrices


def aggregate(
    normalized: pd.DataFrame,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """rliable aggregate statistics over environments, with stratified-bootstrap CIs.

    `normalized`: output of `normalized_scores` (one row per run, columns env, method, seed,
    normalized; lr and score if present). If an (env, method) still has several lrs, the one
    with the highest mean 'score' (ties: larger lr, as `best_lrs`) is kept. Per method the
    runs form a (runs x envs) matrix, matched by position after sorting by seed; when envs
    have different run counts, every env is truncated to that method's minimum count.
    Every method must cover every env and have >= 2 runs per env (else ValueError).

    Returns (table, improvement):
    table: method, statistic (IQM, Mean, Median, Optimality gap), value, low, high.
    improvement: x, y, probability, low, high = P(method x > method y) for each ordered pair
    of distinct methods (rliable's probability_of_improvement; run counts may differ).
    Deterministic for a given seed.
    """
    matrices = _score_matrices(normalized)
    methods = list(matrices)
    # rliable's probability_of_improvement counts ties as 1/2 (Mann-Whitney U), so
    # P(b > a) = 1 - P(a > b) on every resample and the percentile CI of the reverse pair is
    # (1 - high, 1 - low): bootstrapping each unordered pair once halves the slowest part.
    pairs = [(a, b) for i, a in enumerate(methods) for b in methods[i + 1 :]]
    with _seeded_global_numpy(seed):
        points, intervals = rly_library.get_interval_estimates(
            matrices, _aggregate_vector, reps=n_resamples, confidence_interval_size=confidence
        )
        if pairs:
            keyed = {f"{i}": [matrices[a], matrices[b]] for i, (a, b) in enumerate(pairs)}
            poi_points, poi_intervals = rly_library.get_interval_estimates(
                keyed,
                rly_metrics.probability_of_improvement,
                reps=n_resamples,
                confidence_interval_size=confidence,
            )
    table = pd.DataFrame(
        [
            (method, stat, float(points[method][i]), float(intervals[method][0, i]), float(intervals[method][1, i]))
            for method in methods
            for i, stat in enumerate(AGGREGATE_STATISTICS)
        ],
        columns=["method", "statistic", "value", "low", "high"],
    )
    estimates = {}
    for i, (a, b) in enumerate(pairs):
        p = float(poi_points[f"{i}"])
        low, high = (float(v) for v in np.asarray(poi_intervals[f"{i}"]).reshape(-1))
        estimates[a, b] = (p, low, high)
        estimates[b, a] = (1.0 - p, 1.0 - high, 1.0 - low)
    improvement = pd.DataFrame(
        [(a, b, *estimates[a, b]) for a in methods for b in methods if a != b],
        columns=["x", "y", "probability", "low", "high"],
    )
    return table, improvement
