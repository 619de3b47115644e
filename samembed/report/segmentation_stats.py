"""Segmentation's per-image data for the bootstrap: every metric of resampled images from the
per-image pixel counts a run record holds (``metrics.per_image``: tp, fp, fn, tn at the original
resolution). ``micro_<m>`` pools the drawn images' pixels (an image drawn twice counts twice),
``mean_<m>`` averages the drawn images' own scores; a zero denominator counts as 1, as in
:mod:`samembed.segmentation.metrics`."""

from __future__ import annotations

import numpy as np

from ..segmentation.metrics import METRIC_NAMES
from .resampling import SAMPLES, SEED, Statistic, percentile_interval, resampled

METRICS = tuple(f"{p}_{m}" for p in ("micro", "mean") for m in METRIC_NAMES)


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.divide(a, b, out=np.ones(np.broadcast(a, b).shape), where=b > 0)


def scores_of_counts(counts: np.ndarray) -> np.ndarray:
    """(..., 6) :data:`~samembed.segmentation.metrics.METRIC_NAMES` of (..., 4) tp, fp, fn, tn."""
    tp, fp, fn, tn = (counts[..., k].astype(float) for k in range(4))
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    dice = _ratio(2 * tp, 2 * tp + fp + fn)
    return np.stack([_ratio(tp + tn, tp + fp + fn + tn), dice, _ratio(tp, tp + fp + fn), precision, recall, dice],
                    axis=-1)


def segmentation_statistic(counts: np.ndarray) -> Statistic:
    """``weights (s, n) -> (s, 12)`` :data:`METRICS` of images with (n, 4) pixel ``counts``."""
    counts = np.asarray(counts, dtype=float)
    own = scores_of_counts(counts)  # (n, 6)
    n = counts.shape[0]

    def statistic(weights: np.ndarray) -> np.ndarray:
        w = weights.astype(np.float64)  # pixel counts: millions per image, past float32's whole numbers
        return np.concatenate([scores_of_counts(w @ counts), w @ own / n], axis=1)

    return statistic


def record_counts(record: dict) -> np.ndarray:
    """(n, 4) tp, fp, fn, tn of each evaluated image of a segmentation run, in record order."""
    return np.array([[row[k] for k in ("tp", "fp", "fn", "tn")] for row in record["metrics"]["per_image"]],
                    dtype=np.int64).reshape(-1, 4)


def record_statistic(record: dict) -> tuple[Statistic, list[str]]:
    """(the run's statistic, its evaluated image ids) from its record."""
    return (segmentation_statistic(record_counts(record)),
            [row["image_id"] for row in record["metrics"]["per_image"]])


def image_intervals(records: list[dict], samples: int = SAMPLES, seed: int = SEED) -> dict[str, tuple[float, float]]:
    """95 % percentile bootstrap interval of each of :data:`METRICS` averaged over ``records``
    (the seeds of one configuration): each run's images drawn again with replacement, the runs'
    metrics averaged, ``samples`` times."""
    rng = np.random.default_rng(seed)
    total = None
    for record in records:
        counts = record_counts(record)
        values = resampled(segmentation_statistic(counts), counts.shape[0], samples, rng)
        total = values if total is None else total + values
    low, high = percentile_interval(total / len(records))
    return {m: (float(lo), float(hi)) for m, lo, hi in zip(METRICS, low, high)}
