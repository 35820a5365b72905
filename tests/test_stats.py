"""Known-answer tests of hypermeta.analysis.stats on synthetic data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("rliable")
pytest.importorskip("scipy")

from rliable import library as rly_library  # noqa: E402
from rliable import metrics as rly_metrics  # noqa: E402

from hypermeta.analysis import stats  # noqa: E402

# Any warning (scipy degenerate data, arch deprecations, ...) is a failure: none may leak.
pytestmark = pytest.mark.filterwarnings("error")


def curves(runs: dict[tuple, tuple[list, list]]) -> pd.DataFrame:
    """Long evaluation table from {(env, method, lr, seed): (frames, returns)}."""
    rows = [
        {"env": e, "method": m, "lr": lr, "seed": s, "frames": f, "meta_episode_return": r, "other": "x"}
        for (e, m, lr, s), (fs, rs) in runs.items()
        for f, r in zip(fs, rs, strict=True)
    ]
    return pd.DataFrame(rows)


def run_table(values: dict[tuple[str, str], list[float]], lr: float = 1e-3) -> pd.DataFrame:
    """run_scores-like table from {(env, method): [normalized score per seed]}."""
    rows = [
        {"env": e, "method": m, "lr": lr, "seed": s, "score": v, "normalized": v}
        for (e, m), vs in values.items()
        for s, v in enumerate(vs)
    ]
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- smooth


def test_smooth_window_2_hand_computed():
    values = np.arange(20, dtype=float) ** 2  # N = 20 -> w = floor(2.0) = 2
    out = stats.smooth(values)
    # out[0] is padded with v0: (0 + 0) / 2; then pairwise means of neighbours.
    np.testing.assert_allclose(out[:5], [0.0, 0.5, 2.5, 6.5, 12.5])
    np.testing.assert_allclose(out[-1], (18**2 + 19**2) / 2)
    assert out.shape == (20,)


def test_smooth_window_3_hand_computed_with_edge_padding():
    values = np.arange(30, dtype=float) + 1.0  # 1..30, N = 30 -> w = 3
    out = stats.smooth(values)
    # padded = [1, 1, 1, 2, 3, ...]: out[0] = 1, out[1] = (1+1+2)/3, out[i>=2] = values[i-1].
    np.testing.assert_allclose(out[:4], [1.0, 4.0 / 3.0, 2.0, 3.0])
    np.testing.assert_allclose(out[2:], values[1:-1])
    np.testing.assert_allclose(out[-1], (28 + 29 + 30) / 3)


def test_smooth_window_is_at_least_two():
    values = np.array([0.0, 10.0, 20.0, 30.0, 40.0])  # floor(0.5) = 0 -> w = 2
    np.testing.assert_allclose(stats.smooth(values), [0.0, 5.0, 15.0, 25.0, 35.0])


def test_smooth_window_is_floored():
    values = np.arange(25, dtype=float)  # 0.1 * 25 = 2.5 -> w = 2, not 3
    np.testing.assert_allclose(stats.smooth(values)[-1], 23.5)


def test_smooth_fraction_argument():
    values = np.arange(10, dtype=float)
    # fraction 0.4 -> w = 4: out[9] = mean(6, 7, 8, 9), out[1] = mean(0, 0, 0, 1)
    out = stats.smooth(values, fraction=0.4)
    np.testing.assert_allclose([out[1], out[9]], [0.25, 7.5])


def test_smooth_constant_is_constant_and_single_point_unchanged():
    np.testing.assert_allclose(stats.smooth(np.full(57, 0.3)), np.full(57, 0.3))
    np.testing.assert_array_equal(stats.smooth(np.array([4.2])), [4.2])


# --------------------------------------------------------------------------- bootstrap_ci


def test_bootstrap_ci_brackets_mean_and_is_deterministic():
    x = np.random.default_rng(1).normal(3.0, 2.0, size=30)
    low, high = stats.bootstrap_ci(x)
    assert low < x.mean() < high
    assert (low, high) == stats.bootstrap_ci(x, seed=0)
    assert (low, high) != stats.bootstrap_ci(x, seed=1)


def test_bootstrap_ci_shrinks_with_more_samples():
    rng = np.random.default_rng(2)
    small = stats.bootstrap_ci(rng.normal(size=10))
    large = stats.bootstrap_ci(rng.normal(size=1000))
    assert (large[1] - large[0]) < 0.3 * (small[1] - small[0])


def test_bootstrap_ci_68_is_about_one_standard_error():
    x = np.random.default_rng(3).normal(5.0, 1.5, size=400)
    low, high = stats.bootstrap_ci(x, confidence=0.68, n_resamples=2000)
    sem = x.std(ddof=1) / np.sqrt(x.size)
    assert (high - low) / 2 == pytest.approx(sem, rel=0.15)
    assert (low + high) / 2 == pytest.approx(x.mean(), abs=0.2 * sem)
    wide = stats.bootstrap_ci(x, confidence=0.95, n_resamples=2000)
    assert wide[0] < low and wide[1] > high


def test_bootstrap_ci_degenerate_cases_collapse_to_mean():
    low, high = stats.bootstrap_ci(np.array([7.5]))
    assert float(low) == float(high) == 7.5
    low, high = stats.bootstrap_ci(np.full(5, 0.1))
    assert float(low) == float(high) == np.full(5, 0.1).mean()
    low, high = stats.bootstrap_ci(np.array([1.0, np.nan, 2.0]))  # NaN -> NaN, no warning
    assert np.isnan(low) and np.isnan(high)


def test_bootstrap_ci_two_dimensional_per_point():
    rng = np.random.default_rng(4)
    data = rng.normal(size=(8, 5))
    data[:, 2] = 1.25  # zero variance at one point
    low, high = stats.bootstrap_ci(data, axis=0)
    assert low.shape == high.shape == (5,)
    mean = data.mean(axis=0)
    assert np.all(low <= mean) and np.all(mean <= high)
    assert low[2] == high[2] == mean[2]
    assert np.all(high[[0, 1, 3, 4]] > low[[0, 1, 3, 4]])
    # Identical samples: scipy's resampled means can differ from the mean in the last bit
    # (here 0.7000000000000001 vs 0.7); the bounds must still equal the mean, never exclude it.
    flat = np.full((3, 10), 0.7)
    low_f, high_f = stats.bootstrap_ci(flat, axis=1)
    np.testing.assert_array_equal(low_f, flat.mean(axis=1))
    np.testing.assert_array_equal(high_f, flat.mean(axis=1))
    low1, high1 = stats.bootstrap_ci(data[:1], axis=0)  # one seed: bounds = the values
    np.testing.assert_array_equal(low1, data[0])
    np.testing.assert_array_equal(high1, data[0])
    lowT, highT = stats.bootstrap_ci(data.T, axis=1)  # same statistic along the other axis
    np.testing.assert_allclose(lowT, low, atol=0.3)
    np.testing.assert_allclose(highT, high, atol=0.3)


# --------------------------------------------------------------------------- run_score(s)


def test_run_score_linear_ramp():
    frames = np.arange(10) * 10.0
    returns = np.arange(10, dtype=float)
    assert stats.run_score(frames, returns, "average") == pytest.approx(4.5)
    assert stats.run_score(frames, returns, "auc") == pytest.approx(4.5)  # midpoint
    assert stats.run_score(frames, returns, "final") == pytest.approx(8.5)  # w = 2: (8 + 9) / 2


def test_run_score_metrics_differ_on_uneven_frames():
    frames = np.array([0.0, 10.0, 100.0])
    returns = np.array([0.0, 0.0, 9.0])
    assert stats.run_score(frames, returns, "average") == pytest.approx(3.0)
    # trapezoid: 0 over [0, 10] + 90 * (0 + 9) / 2 = 405, over a span of 100
    assert stats.run_score(frames, returns, "auc") == pytest.approx(4.05)
    assert stats.run_score(frames, returns, "final") == pytest.approx(4.5)


def test_run_score_constant_and_single_point():
    frames = np.array([5.0, 6.0, 20.0, 21.0])
    for metric in stats.METRICS:
        assert stats.run_score(frames, np.full(4, -2.0), metric) == pytest.approx(-2.0)
        assert stats.run_score(np.array([3.0]), np.array([1.5]), metric) == pytest.approx(1.5)


def test_run_score_unknown_metric():
    with pytest.raises(ValueError, match="median.*average.*final.*auc"):
        stats.run_score(np.arange(3.0), np.arange(3.0), "median")
    with pytest.raises(ValueError, match="median"):
        stats.run_scores(curves({("e", "m", 1.0, 0): ([0], [1.0])}), "median")


def test_run_scores_sorts_by_frames_and_gives_one_row_per_run():
    df = curves(
        {
            ("e", "m", 0.1, 0): ([30, 0, 20, 10], [3.0, 0.0, 2.0, 1.0]),  # shuffled ramp
            ("e", "m", 0.1, 1): ([0, 10], [5.0, 7.0]),
            ("e", "n", 0.1, 0): ([0, 10], [1.0, 1.0]),
        }
    ).sample(frac=1.0, random_state=0)
    out = stats.run_scores(df, "final")
    assert list(out.columns) == ["env", "method", "lr", "seed", "score"]
    assert len(out) == 3
    score = out.set_index(["method", "seed"])["score"]
    assert score["m", 0] == pytest.approx(2.5)  # sorted: 0,1,2,3 -> (2 + 3) / 2
    assert score["m", 1] == pytest.approx(6.0)
    assert score["n", 0] == pytest.approx(1.0)


# --------------------------------------------------------------------------- lr selection


def lr_grid() -> pd.DataFrame:
    frames = [0, 10, 20]
    runs = {}
    for seed in range(3):  # lr 1e-3: every run averages 5 -> mean 5
        runs["e", "m", 1e-3, seed] = (frames, [5.0, 5.0, 5.0])
    for seed, v in enumerate([10.0, 0.0, 0.0]):  # lr 1e-2: best single run, mean 3.33
        runs["e", "m", 1e-2, seed] = (frames, [v, v, v])
    for seed in range(2):  # another (env, method) whose tie goes to the larger lr
        runs["f", "m", 1e-4, seed] = (frames, [1.0, 1.0, 1.0])
        runs["f", "m", 3e-4, seed] = (frames, [1.0, 1.0, 1.0])
    return curves(runs)


def test_best_lrs_uses_mean_over_seeds_not_best_run():
    df = lr_grid()
    best = stats.best_lrs(df).set_index(["env", "method"])
    assert list(stats.best_lrs(df).columns) == ["env", "method", "lr", "score", "seeds"]
    assert best.loc[("e", "m"), "lr"] == 1e-3
    assert best.loc[("e", "m"), "score"] == pytest.approx(5.0)
    assert best.loc[("e", "m"), "seeds"] == 3
    assert best.loc[("f", "m"), "lr"] == 3e-4  # tie -> larger lr
    # Sanity of the construction: the single best run is at the other lr.
    runs = stats.run_scores(df)
    assert runs.loc[runs["score"].idxmax(), "lr"] == 1e-2


def test_best_lrs_depends_on_metric():
    frames = [0, 10, 20, 30]
    df = curves(
        {
            ("e", "m", 0.1, 0): (frames, [0.0, 0.0, 0.0, 8.0]),  # late riser: final 4, average 2
            ("e", "m", 0.2, 0): (frames, [3.0, 3.0, 3.0, 3.0]),  # flat 3
        }
    )
    assert stats.best_lrs(df, "average")["lr"].item() == 0.2
    assert stats.best_lrs(df, "final")["lr"].item() == 0.1


def test_select_best_keeps_only_rows_of_best_lr():
    df = lr_grid()
    sel = stats.select_best(df)
    assert set(zip(sel["env"], sel["lr"], strict=True)) == {("e", 1e-3), ("f", 3e-4)}
    expected = df[((df["env"] == "e") & (df["lr"] == 1e-3)) | ((df["env"] == "f") & (df["lr"] == 3e-4))]
    pd.testing.assert_frame_equal(sel, expected)


# --------------------------------------------------------------------------- curves


def test_curve_ci_common_x_and_per_seed_smoothing():
    f0 = list(range(0, 100, 10))  # 10 points, w = 2
    f1 = list(range(0, 300, 10))  # 30 points, w = 3
    r0 = [float(i) for i in range(10)]
    r1 = [float(2 * i) for i in range(30)]
    df = curves({("e", "m", 1.0, 0): (f0, r0), ("e", "m", 1.0, 1): (f1, r1)}).sample(frac=1.0, random_state=1)
    out = stats.curve_ci(df)
    assert list(out.columns) == ["frames", "mean", "low", "high", "seeds"]
    np.testing.assert_array_equal(out["frames"], f0)
    # Each seed is smoothed over its own length before the common x are kept.
    s0 = stats.smooth(np.array(r0))
    s1 = stats.smooth(np.array(r1))[:10]
    np.testing.assert_allclose(out["mean"], (s0 + s1) / 2)
    assert np.all(out["low"] <= out["mean"]) and np.all(out["mean"] <= out["high"])
    assert np.all(out["low"] >= np.minimum(s0, s1) - 1e-12)
    assert np.all(out["high"] <= np.maximum(s0, s1) + 1e-12)
    assert (out["seeds"] == 2).all()


def test_curve_ci_downsamples_evenly():
    n = 1000
    frames = np.arange(n) * 100
    rng = np.random.default_rng(5)
    df = curves({("e", "m", 1.0, s): (frames, rng.normal(size=n)) for s in range(3)})
    out = stats.curve_ci(df, max_points=200)
    assert len(out) == 200
    assert out["frames"].iloc[0] == 0 and out["frames"].iloc[-1] == (n - 1) * 100
    steps = np.diff(out["frames"].to_numpy()) / 100
    assert steps.min() >= 5 and steps.max() <= 6  # 999 / 199 = 5.02
    assert len(stats.curve_ci(df, max_points=None)) == n
    assert len(stats.curve_ci(df.rename(columns={"frames": "t"}), x="t", max_points=50)) == 50


def test_curve_ci_single_seed_and_repeated_x():
    df = curves({("e", "m", 1.0, 0): ([0, 10, 20], [1.0, 2.0, 3.0])})
    out = stats.curve_ci(df)
    np.testing.assert_array_equal(out["low"], out["mean"])
    np.testing.assert_array_equal(out["high"], out["mean"])
    two_lrs = curves({("e", "m", 1.0, 0): ([0, 10], [1.0, 2.0]), ("e", "m", 2.0, 0): ([0, 10], [1.0, 2.0])})
    with pytest.raises(ValueError, match="repeated"):
        stats.curve_ci(two_lrs)


def test_frames_to_reach_uses_the_smoothed_curves():
    """Seed 0 ramps 0..9 (w = 2: smoothed 0, 0.5, 1.5, 2.5, ...), seed 1 ramps twice as fast
    (0, 1, 3, 5, ...). Threshold 4: seed 0's smoothed curve reaches it at its 6th point
    (4.5 at frames 50; the raw curve would at frames 40), seed 1's at frames 30 (5.0); their
    mean (0, .75, 2.25, 3.75, 5.25) at frames 40. A threshold above both: NaN, 0 reached."""
    frames = list(range(0, 100, 10))
    df = curves({("e", "m", 1.0, 0): (frames, [float(i) for i in range(10)]),
                 ("e", "m", 1.0, 1): (frames, [2.0 * i for i in range(10)])})
    out = stats.frames_to_reach(df.sample(frac=1.0, random_state=2), 4.0)
    assert list(out.columns) == ["env", "method", "lr", "mean_curve", "per_seed", "reached", "seeds"]
    row = out.iloc[0]
    assert (row["mean_curve"], row["per_seed"], row["reached"], row["seeds"]) == (40.0, (50.0, 30.0), 2, 2)
    never = stats.frames_to_reach(df, 100.0).iloc[0]
    assert np.isnan(never["mean_curve"]) and all(np.isnan(never["per_seed"])) and never["reached"] == 0
    # Threshold 10: only seed 1 gets there (11 at frames 60); the mean does too (11.25 at 80),
    # which is why the table says how many seeds reached it.
    one = stats.frames_to_reach(df, 10.0).iloc[0]
    assert one["per_seed"][1] == 60.0 and np.isnan(one["per_seed"][0]) and one["reached"] == 1
    assert one["mean_curve"] == 80.0


def test_final_scores_ci():
    frames = [0, 10]
    runs = {("e", "m", 0.1, s): (frames, [0.0, v]) for s, v in enumerate([2.0, 4.0, 6.0, 8.0])}
    runs["e", "m", 0.2, 0] = (frames, [0.0, 3.0])
    out = stats.final_scores_ci(curves(runs))  # final of 2 points, w = 2: v / 2
    assert list(out.columns) == ["env", "method", "lr", "mean", "low", "high", "seeds"]
    first = out[out["lr"] == 0.1].iloc[0]
    assert first["mean"] == pytest.approx(2.5) and first["seeds"] == 4
    assert 1.0 <= first["low"] < 2.5 < first["high"] <= 4.0
    second = out[out["lr"] == 0.2].iloc[0]
    assert second["mean"] == second["low"] == second["high"] == pytest.approx(1.5)


# --------------------------------------------------------------------------- normalization


def test_normalized_scores_with_references_and_min_max_fallback():
    scores = pd.DataFrame(
        {
            "env": ["a", "a", "b", "b", "b", "c", "c"],
            "method": ["m", "n", "m", "m", "n", "m", "n"],
            "lr": 1.0,
            "seed": [0, 0, 0, 1, 0, 0, 0],
            "score": [5.0, -10.0, 2.0, 6.0, 4.0, 3.0, 3.0],
        }
    )
    out = stats.normalized_scores(scores, {"a": (-10.0, 10.0)})
    np.testing.assert_allclose(out["normalized"], [0.75, 0.0, 0.0, 1.0, 0.5, 0.0, 0.0])
    assert "normalized" not in scores.columns  # input untouched
    with pytest.raises(ValueError, match="equal"):
        stats.normalized_scores(scores, {"a": (1.0, 1.0)})


# --------------------------------------------------------------------------- rliable aggregates


def test_aggregate_dominating_method():
    rng = np.random.default_rng(6)
    values = {}
    for env in ["a", "b", "c"]:
        values[env, "good"] = list(0.6 + 0.4 * rng.random(5))
        values[env, "bad"] = list(0.5 * rng.random(5))
    table, improvement = stats.aggregate(run_table(values), n_resamples=200)
    assert list(table.columns) == ["method", "statistic", "value", "low", "high"]
    assert list(improvement.columns) == ["x", "y", "probability", "low", "high"]
    iqm = table[table["statistic"] == "IQM"].set_index("method")
    assert iqm.loc["good", "value"] > iqm.loc["bad", "value"]
    assert iqm.loc["good", "low"] > iqm.loc["bad", "high"]
    p = improvement.set_index(["x", "y"])
    assert tuple(p.loc[("good", "bad")]) == (1.0, 1.0, 1.0)
    assert tuple(p.loc[("bad", "good")]) == (0.0, 0.0, 0.0)
    assert len(improvement) == 2


def test_aggregate_hand_computed_statistics():
    # One method, 4 runs x 2 envs; the 8 scores are 0, .1, ..., .6 and an outlier of 10.
    values = {("a", "m"): [0.0, 0.1, 0.2, 0.3], ("b", "m"): [0.4, 0.5, 0.6, 10.0]}
    table, improvement = stats.aggregate(run_table(values), n_resamples=200)
    got = table.set_index("statistic")["value"]
    assert got["IQM"] == pytest.approx(np.mean([0.2, 0.3, 0.4, 0.5]))  # 25 % cut at each end
    assert got["Mean"] == pytest.approx(12.1 / 8)
    assert got["Median"] == pytest.approx(np.median([0.15, 2.875]))  # median of the env means
    assert got["Optimality gap"] == pytest.approx(1 - (2.1 + 1.0) / 8)  # 10 clipped to 1
    assert ((table["low"] <= table["value"]) & (table["value"] <= table["high"])).all()
    assert improvement.empty


def test_aggregate_probability_of_improvement_values():
    # Per env P(x > y) by hand (ties count 1/2), averaged over envs.
    values = {
        ("a", "x"): [1.0, 3.0],
        ("a", "y"): [2.0, 2.0],  # x > y in 2 of 4 pairs -> 0.5
        ("b", "x"): [5.0, 5.0],
        ("b", "y"): [5.0, 4.0],  # 1 tie + 1 win out of 2, twice -> 0.75
    }
    table, improvement = stats.aggregate(run_table(values), n_resamples=300, seed=3)
    p = improvement.set_index(["x", "y"])
    assert p.loc[("x", "y"), "probability"] == pytest.approx((0.5 + 0.75) / 2)
    assert p.loc[("y", "x"), "probability"] == pytest.approx(1 - (0.5 + 0.75) / 2)
    # The reverse pair's CI is the mirror of the forward one; check it against a direct rliable run.
    assert p.loc[("y", "x"), "low"] == pytest.approx(1 - p.loc[("x", "y"), "high"])
    mx = np.array([[1.0, 5.0], [3.0, 5.0]])
    my = np.array([[2.0, 5.0], [2.0, 4.0]])
    np.random.seed(3)
    _, direct = rly_library.get_interval_estimates(
        {"yx": [my, mx]}, rly_metrics.probability_of_improvement, reps=300, confidence_interval_size=0.95
    )
    np.testing.assert_allclose(np.ravel(direct["yx"]), p.loc[("y", "x"), ["low", "high"]], atol=0.13)


def test_aggregate_deterministic_and_leaves_global_rng_alone():
    rng = np.random.default_rng(7)
    values = {(env, m): list(rng.random(4)) for env in "ab" for m in ("p", "q")}
    df = run_table(values)
    np.random.seed(123)
    expected_next = np.random.random()
    np.random.seed(123)
    first = stats.aggregate(df, n_resamples=100, seed=1)
    assert np.random.random() == expected_next
    second = stats.aggregate(df, n_resamples=100, seed=1)
    other = stats.aggregate(df, n_resamples=100, seed=2)
    pd.testing.assert_frame_equal(first[0], second[0])
    pd.testing.assert_frame_equal(first[1], second[1])
    assert not first[0][["low", "high"]].equals(other[0][["low", "high"]])


def test_aggregate_truncates_and_selects_lr():
    # env a has 5 runs, env b 3: the first 3 seeds of a are used (Mean = mean of the 6 kept).
    values = {("a", "m"): [0.0, 0.0, 0.0, 9.0, 9.0], ("b", "m"): [1.0, 2.0, 3.0]}
    df = run_table(values)
    table, _ = stats.aggregate(df, n_resamples=100)
    assert table.set_index("statistic").loc["Mean", "value"] == pytest.approx(1.0)
    # A worse second lr on both envs is ignored (best mean 'score' per (env, method)).
    worse = run_table({("a", "m"): [-5.0, -5.0], ("b", "m"): [-5.0, -5.0]}, lr=1e-2)
    table2, _ = stats.aggregate(pd.concat([df, worse]), n_resamples=100)
    pd.testing.assert_frame_equal(table, table2)


def test_aggregate_rejects_too_few_runs_and_missing_envs():
    with pytest.raises(ValueError, match=">= 2 runs"):
        stats.aggregate(run_table({("a", "m"): [0.5], ("b", "m"): [0.1, 0.2]}), n_resamples=50)
    with pytest.raises(ValueError, match="no runs on"):
        stats.aggregate(
            run_table({("a", "m"): [0.1, 0.2], ("b", "m"): [0.1, 0.2], ("a", "n"): [0.3, 0.4]}), n_resamples=50
        )
