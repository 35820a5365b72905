"""The paper's smoothing of learning curves (the authors' `visualize_runs.py`), in numpy only:
run curves (`hypermeta.analysis.plot`, base install) and the report (`stats`, the report
extra) draw the same curve."""

from __future__ import annotations

import math

import numpy as np

SMOOTHING_FRACTION = 0.1
"""The trailing window as a fraction of a curve's points (the authors' `smoothing_sz`)."""


def smooth(values: np.ndarray, fraction: float = SMOOTHING_FRACTION) -> np.ndarray:
    """Trailing moving average over the last w = max(2, floor(fraction * N)) of N points.

    The start is edge-padded with the first value, so the output has length N and
    ``out[i] = mean(padded[i : i + w])`` with ``padded = [v0] * (w - 1) + values``.
    Arrays of 0 or 1 points are returned unchanged (as float).
    """
    values = np.asarray(values, dtype=float)
    if values.ndim != 1:
        raise ValueError(f"smooth expects a 1-D array, got shape {values.shape}")
    n = values.shape[0]
    if n <= 1:
        return values.copy()
    # floor as in the original (int(smoothing_sz * len)); at least 2 so some smoothing happens.
    w = max(2, math.floor(fraction * n))
    padded = np.concatenate([np.full(w - 1, values[0]), values])
    return np.lib.stride_tricks.sliding_window_view(padded, w).mean(axis=1)
