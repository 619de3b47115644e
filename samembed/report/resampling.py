"""The bootstrap over evaluated images (Efron & Tibshirani 1993), paired and not, and the tests
over seeds with Holm's correction (1979), for any task: a task gives per-image data and a
``statistic`` that turns resampling weights into its metrics (docs/report.md, "Intervals").

A resample draws a run's ``n`` evaluated images ``n`` times with replacement; it is represented by
how often each image was drawn, an (S, n) array of counts (one row per resample), so a metric is a
weighted sum over images and S resamples cost a few matrix products."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats

SAMPLES = 1000  # resamples of the evaluated images
SEED = 0  # fixed, so a report is the same every time it is written
LEVEL = 0.95
_CHUNK = 1 << 22  # counts drawn at once (S x n elements), so 25,000 images x 1,000 resamples stay small

#: ``statistic(weights) -> values``: (s, n) float32 counts of each image in s resamples (whole
#: numbers, exact in float32) -> (s, M) float64 metrics.
Statistic = Callable[[np.ndarray], np.ndarray]


def draws(n: int, samples: int, rng: np.random.Generator):
    """Yield (s, n) int64 counts of ``samples`` resamples of ``n`` images, in chunks: ``n`` images
    drawn uniformly with replacement per resample, counted per image (a multinomial draw, made
    this way because numpy's multinomial is several times slower for thousands of images)."""
    step = max(1, _CHUNK // max(n, 1))
    for start in range(0, samples, step):
        s = min(step, samples - start)
        drawn = rng.integers(0, n, (s, n)) + n * np.arange(s)[:, None]
        yield np.bincount(drawn.ravel(), minlength=s * n).reshape(s, n)


def resampled(statistic: Statistic, n: int, samples: int, rng: np.random.Generator) -> np.ndarray:
    """(samples, M) values of ``statistic`` on resamples of ``n`` images."""
    return resampled_together([statistic], n, samples, rng)[0]


def resampled_together(statistics: Sequence[Statistic], n: int, samples: int,
                       rng: np.random.Generator) -> list[np.ndarray]:
    """(samples, M) values of each of ``statistics`` (runs on the same ``n`` images, in the same
    order) on the same resamples: what pairs them. Drawn once for all of them."""
    out: list[list[np.ndarray]] = [[] for _ in statistics]
    for counts in draws(n, samples, rng):
        weights = counts.astype(np.float32)  # once for all the statistics: float products are BLAS's
        for values, statistic in zip(out, statistics):
            values.append(statistic(weights))
    return [np.concatenate(v) for v in out]


def whole(statistic: Statistic, n: int) -> np.ndarray:
    """(M,) values of ``statistic`` on the evaluated images themselves (every image once)."""
    return statistic(np.ones((1, n), dtype=np.float32))[0]


def percentile_interval(values: np.ndarray, level: float = LEVEL) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) percentile interval of (S, ...) bootstrap values along the first axis."""
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(values, [tail, 100 - tail], axis=0)
    return low, high


def difference_interval(a: Sequence[np.ndarray], b: Sequence[np.ndarray], level: float = LEVEL):
    """(low, high) (M,) interval of the difference A - B averaged over seeds, from each seed's
    (S, M) bootstrap values of A and of B (on the same resamples, for a paired interval)."""
    return percentile_interval(sum(x - y for x, y in zip(a, b)) / len(a), level)


def paired_difference(seeds: Sequence[tuple[Statistic, Statistic, int]], samples: int = SAMPLES, seed: int = SEED,
                      level: float = LEVEL, paired: bool = True) -> dict[str, np.ndarray]:
    """The difference A - B of M metrics, averaged over seeds, and its bootstrap interval.

    ``seeds`` holds, per seed, A's and B's statistic on the same ``n`` evaluated images (in the
    same order). Every resample draws each seed's images once and scores A and B on that same
    draw (``paired``: what they got right and wrong on the same images cancels), then averages
    the seeds' differences. ``paired=False`` draws A's and B's images independently, the interval
    of two unrelated samples (for comparison only). Returns ``difference`` (M,) on the evaluated
    images, ``low`` and ``high`` (M,), and ``per_seed`` (k, M) differences."""
    rng = np.random.default_rng(seed)
    per_seed, boot_a, boot_b = [], [], []
    for stat_a, stat_b, n in seeds:
        per_seed.append(whole(stat_a, n) - whole(stat_b, n))
        if paired:
            a, b = resampled_together([stat_a, stat_b], n, samples, rng)
        else:
            a, b = resampled(stat_a, n, samples, rng), resampled(stat_b, n, samples, rng)
        boot_a.append(a)
        boot_b.append(b)
    low, high = difference_interval(boot_a, boot_b, level)
    per_seed = np.asarray(per_seed)
    return {"difference": per_seed.mean(axis=0), "low": low, "high": high, "per_seed": per_seed}


MIN_TEST_SEEDS = 3  # a t test over fewer seeds (one degree of freedom) says next to nothing


def seed_test(differences: np.ndarray, correction: float = 0.0) -> float:
    """Two-sided p-value of a paired t test that the mean of the per-seed ``differences`` (k,) is
    0, seeds as replicates. ``correction`` is Nadeau & Bengio's (2003) ``n_test / n_train`` for
    seeds whose training sets overlap (variance factor ``1/k + correction`` instead of ``1/k``).
    ``nan`` below :data:`MIN_TEST_SEEDS` seeds, or when the differences do not vary over seeds
    (then the seeds say nothing about the spread)."""
    d = np.asarray(differences, dtype=float)
    k = d.size
    if k < MIN_TEST_SEEDS:
        return math.nan
    if np.ptp(d) <= 1e-12:  # equal up to rounding: no spread to test against
        return math.nan
    sd = float(d.std(ddof=1))
    t = float(d.mean()) / (sd * math.sqrt(1 / k + correction))
    return float(2 * stats.t.sf(abs(t), df=k - 1))


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's (1979) step-down adjusted p-values of a family of tests (``nan`` stays ``nan`` and
    is not counted): the i-th smallest of m is multiplied by m - i + 1, made monotone, capped at 1.
    Rejecting where the adjusted value is below alpha keeps the family-wise error at alpha."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, math.nan)
    valid = np.flatnonzero(~np.isnan(p))
    m = valid.size
    if not m:
        return out
    order = valid[np.argsort(p[valid], kind="stable")]
    adjusted = np.minimum(1.0, np.maximum.accumulate(p[order] * (m - np.arange(m))))
    out[order] = adjusted
    return out
