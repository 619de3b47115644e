"""Time the report's paired differences for a study-sized runs store, against the floor of its
arithmetic.

    python benchmarks/report_comparisons.py
    python benchmarks/report_comparisons.py --configurations 6 --splits 3

The store is generated (no training): EuroSAT's 27,000 images in 10 classes, ``--splits``
validation fractions from 0.1 to 0.9 (2,700 to 24,300 evaluated images), 3 seeds, and
``--configurations`` configurations per split whose predictions are right on 70-95 % of the
images; every two on a split are compared (the study: 11 configurations, 55 pairs per split).

Each set of evaluated images (a split and a seed) is resampled 1,000 times once, for every
configuration on it, so the work is: per image set, drawing 1,000 x n image indices and counting
them; per configuration and image set, one (1,000 x n) x (n x 31) float32 product (right, and per
class right, true, predicted); per pair, a subtraction and two percentiles. The floor times numpy
drawing and counting the indices of the largest set and one such product on it, and scales them
by the images drawn and the products made in all."""

from __future__ import annotations

import argparse
import time

import numpy as np

from samembed.classification.metrics import predictions_field
from samembed.report.classification_stats import METRICS, record_statistic
from samembed.report.comparisons import Configuration, comparisons
from samembed.report.resampling import SAMPLES


def _store(configurations: int, splits: list[float], seeds: int, images: int = 27000, classes: int = 10):
    rng = np.random.default_rng(0)
    truth_all = np.repeat(np.arange(classes), images // classes)
    out = []
    for k in range(configurations):
        accuracy = 0.70 + 0.25 * k / max(configurations - 1, 1)
        for split in splits:
            runs = {}
            for seed in range(seeds):
                n = int(images * split)
                truth = truth_all[np.sort(np.random.default_rng([seed, int(split * 100)]).choice(images, n,
                                                                                                  replace=False))]
                wrong = (truth + rng.integers(1, classes, n)) % classes
                predicted = np.where(rng.random(n) < accuracy, truth, wrong)
                runs[seed] = {"run_id": f"{k}-{split}-{seed}", "config": {"seed": seed},
                              "cache": {"dataset": "eurosat", "signature": {}},
                              "split": {"indices_hash": f"{split}-{seed}", "n_train": images - n, "n_val": n},
                              "metrics": {"per_class": {str(c): {} for c in range(classes)},
                                          "predictions": predictions_field(truth, predicted, classes)}}
            out.append(Configuration(f"config {k}", "eurosat", f"val={split}", "val", "enc", f"head-{k}", accuracy,
                                     runs))
    return out


def _floor(splits: list[float], seeds: int, configurations: int, images: int = 27000, classes: int = 10) -> float:
    """Seconds numpy takes to draw and count every image set's resampled indices and to make every
    configuration's product with them: both timed on the largest set (best of 3), then scaled."""
    n = int(images * max(splits))
    rng = np.random.default_rng(1)
    columns = rng.random((n, 1 + 3 * classes)).astype(np.float32)
    draw = product = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for start in range(0, SAMPLES, 100):
            drawn = rng.integers(0, n, (100, n)) + n * np.arange(100)[:, None]
            weights = np.bincount(drawn.ravel(), minlength=100 * n).reshape(100, n).astype(np.float32)
        t1 = time.perf_counter()
        for start in range(0, SAMPLES, 100):
            weights @ columns
        draw, product = min(draw, t1 - t0), min(product, time.perf_counter() - t1)
    scale = sum(int(images * s) for s in splits) * seeds / n
    return scale * (draw + configurations * product)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configurations", type=int, default=11)
    parser.add_argument("--splits", type=int, default=9)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    splits = [round(0.1 * (k + 1) * 9 / args.splits, 2) for k in range(args.splits)]
    configurations = _store(args.configurations, splits, args.seeds)
    t0 = time.perf_counter()
    result = comparisons(configurations, record_statistic, METRICS)
    seconds = time.perf_counter() - t0
    floor = _floor(splits, args.seeds, args.configurations)
    print(f"{len(result.table)} pairs of {args.configurations} configurations on {len(splits)} splits x {args.seeds} "
          f"seeds ({len(splits) * args.seeds} image sets of {int(27000 * min(splits))}-{int(27000 * max(splits))} "
          f"images, {SAMPLES} resamples each): {seconds:.1f} s")
    print(f"floor (drawing and counting the resampled images, one product per configuration and image set): "
          f"{floor:.1f} s; {seconds / floor:.1f} x the floor")


if __name__ == "__main__":
    main()
