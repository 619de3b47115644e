"""The report's statistics: the image bootstrap (macro F1 of perfect classifiers, segmentation
metrics from per-image counts), paired differences (coverage of a planted difference, identical
configurations, correlated errors), the seed test and Holm's correction, and which pairs are
compared."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from samembed.classification.metrics import classification_metrics, decode_classes, predictions_field
from samembed.report.classification_stats import classification_statistic, record_statistic
from samembed.report.comparisons import Configuration, comparisons
from samembed.report.resampling import holm, paired_difference, resampled, seed_test, whole
from samembed.report.segmentation_stats import METRICS as SEG_METRICS, image_intervals, segmentation_statistic
from samembed.report.tables import bootstrap_interval
from samembed.segmentation.metrics import segmentation_metrics


def test_a_perfect_classifier_has_a_zero_width_macro_f1_interval():
    """knn at 100 % showed macro F1 (75.00-100.00): resamples that missed a class scored its F1 0."""
    perfect = np.diag([2] * 10)  # 10 classes, 2 evaluated images each: most resamples miss a class
    assert bootstrap_interval([perfect]) == {"accuracy": (1.0, 1.0), "macro_f1": (1.0, 1.0)}
    truth = np.repeat(np.arange(3), 2)
    values = resampled(classification_statistic(truth, truth, 3), truth.size, 1000, np.random.default_rng(0))
    assert (values == 1.0).all()


def test_macro_f1_of_a_resample_averages_the_classes_in_its_truth():
    truth, predicted = np.array([0, 0, 1, 2]), np.array([0, 1, 1, 2])
    statistic = classification_statistic(truth, predicted, 3)
    on_all = whole(statistic, 4)
    metrics = classification_metrics(truth, predicted, ["a", "b", "c"])
    assert on_all == pytest.approx([metrics["accuracy"], metrics["macro_f1"]])  # every class present: as recorded
    drawn = np.array([[2, 0, 2, 0]])  # images 0 and 2 twice: classes 0 and 1 in the truth, class 2 absent
    # class 0: tp 2, true 2, predicted 2 -> F1 1; class 1: tp 2, true 2, predicted 2 -> 1; class 2 left out
    assert statistic(drawn)[0] == pytest.approx([1.0, 1.0])


def test_record_predictions_round_trip():
    rng = np.random.default_rng(0)
    truth, predicted = rng.integers(0, 300, 1000), rng.integers(0, 300, 1000)
    field = predictions_field(truth, predicted, 300)
    assert field["encoding"] == "zlib-base64-u2"
    assert np.array_equal(decode_classes(field["encoding"], field["predicted"]), predicted)
    small = predictions_field(truth % 10, truth % 10, 10)
    assert small["encoding"] == "zlib-base64-u1" and len(small["true"]) < 1000
    assert record_statistic({"metrics": {"per_class": {}}}) is None  # records of an earlier samembed


def _two_classifiers(rng, n: int, accuracy_a: float, accuracy_b: float, shared: float, classes: int = 4):
    """Truth and two predictions: each image is right for A with ``accuracy_a``; B copies A's
    rightness with probability ``shared`` (positively correlated errors), else is right with
    ``accuracy_b`` on its own; wrong answers are another class at random."""
    truth = rng.integers(0, classes, n)
    right_a = rng.random(n) < accuracy_a
    copied = rng.random(n) < shared
    right_b = np.where(copied, right_a, rng.random(n) < accuracy_b)

    def answers(right):
        wrong = (truth + rng.integers(1, classes, n)) % classes
        return np.where(right, truth, wrong)

    return truth, answers(right_a), answers(right_b)


def test_the_paired_interval_covers_a_planted_difference_at_its_nominal_rate():
    """Accuracy 0.80 against 0.70 (true difference 0.10) on 2 seeds x 120 images, 200 draws: a
    95 % interval must hold 0.10 in 95 % of them, within 3 standard errors of a proportion over
    200 draws (sqrt(0.95 x 0.05 / 200) = 0.0154)."""
    rng = np.random.default_rng(1)
    draws, hits = 200, 0
    for _ in range(draws):
        seeds = []
        for _ in range(2):
            truth, a, b = _two_classifiers(rng, 120, 0.80, 0.70, shared=0.0)
            seeds.append((classification_statistic(truth, a, 4), classification_statistic(truth, b, 4), 120))
        result = paired_difference(seeds, samples=400, seed=int(rng.integers(1 << 30)))
        hits += result["low"][0] <= 0.10 <= result["high"][0]
    tolerance = 3 * math.sqrt(0.95 * 0.05 / draws)
    assert abs(hits / draws - 0.95) <= tolerance, hits / draws


def test_identical_configurations_differ_by_exactly_zero_with_zero_width():
    rng = np.random.default_rng(2)
    truth, a, _ = _two_classifiers(rng, 200, 0.7, 0.7, shared=0.0)
    statistic = classification_statistic(truth, a, 4)
    result = paired_difference([(statistic, classification_statistic(truth, a.copy(), 4), 200)] * 3)
    assert (result["difference"] == 0).all() and (result["low"] == 0).all() and (result["high"] == 0).all()
    counts = rng.integers(0, 500, (20, 4))
    seg = paired_difference([(segmentation_statistic(counts), segmentation_statistic(counts.copy()), 20)])
    assert (seg["low"] == 0).all() and (seg["high"] == 0).all()


def test_with_positively_correlated_errors_the_paired_interval_is_narrower_than_the_unpaired():
    rng = np.random.default_rng(3)
    truth, a, b = _two_classifiers(rng, 400, 0.75, 0.70, shared=0.9)  # B fails mostly where A fails
    seeds = [(classification_statistic(truth, a, 4), classification_statistic(truth, b, 4), 400)]
    paired = paired_difference(seeds)
    unpaired = paired_difference(seeds, paired=False)
    assert paired["difference"] == pytest.approx(unpaired["difference"])
    width = lambda r: r["high"] - r["low"]  # noqa: E731
    assert (width(paired) < 0.6 * width(unpaired)).all()


def test_segmentation_statistic_equals_the_recorded_metrics_and_its_interval_holds_them():
    rng = np.random.default_rng(4)
    per_image = [{"image_id": str(i), **dict(zip(("tp", "fp", "fn", "tn"), map(int, rng.integers(0, 300, 4))))}
                 for i in range(12)]
    per_image[0].update(tp=0, fp=0, fn=0)  # no road and none predicted: every ratio counts as 1
    recorded = segmentation_metrics(per_image)
    counts = np.array([[r[k] for k in ("tp", "fp", "fn", "tn")] for r in per_image])
    assert whole(segmentation_statistic(counts), 12) == pytest.approx([recorded[m] for m in SEG_METRICS])
    record = {"metrics": recorded}
    intervals = image_intervals([record])
    assert all(intervals[m][0] <= recorded[m] <= intervals[m][1] for m in SEG_METRICS)
    assert intervals["micro_dice"][1] > intervals["micro_dice"][0]
    perfect = {"metrics": segmentation_metrics([{"image_id": str(i), "tp": 5 + i, "fp": 0, "fn": 0, "tn": 9}
                                                for i in range(6)])}
    assert all(low == high == 1.0 for low, high in image_intervals([perfect]).values())


def test_the_seed_test_and_holms_correction_on_hand_checked_values():
    # d = 1, 2, 3: mean 2, sd 1, t = 2 / (1 / sqrt 3) = 3.4641 on 2 degrees of freedom
    assert seed_test([1, 2, 3]) == pytest.approx(2 * stats.t.sf(2 * math.sqrt(3), 2))
    # Nadeau & Bengio: variance factor 1/3 + 0.25 instead of 1/3
    assert seed_test([1, 2, 3], correction=0.25) == pytest.approx(2 * stats.t.sf(2 / math.sqrt(1 / 3 + 0.25), 2))
    assert math.isnan(seed_test([1, 2])) and math.isnan(seed_test([0.1, 0.1, 0.1]))
    # sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04 -> monotone 0.02, 0.03, 0.06, 0.06
    adjusted = holm([0.01, 0.04, 0.03, 0.005, math.nan])
    assert adjusted[:4] == pytest.approx([0.03, 0.06, 0.06, 0.02]) and math.isnan(adjusted[4])
    assert holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])


def _record(run_id: str, seed: int, truth, predicted, indices_hash: str, split: str = "val=0.5") -> dict:
    return {"run_id": run_id, "config": {"seed": seed}, "cache": {"dataset": "eurosat", "signature": {}},
            "split": {"indices_hash": indices_hash, "n_train": 100, "n_val": len(truth)},
            "metrics": {"per_class": {c: {} for c in "abcd"}, "predictions": predictions_field(truth, predicted, 4)}}


def test_configurations_are_compared_only_on_the_images_they_share():
    rng = np.random.default_rng(5)
    truth, a, b = _two_classifiers(rng, 80, 0.9, 0.6, shared=0.0)

    def config(label, head, predicted, hashes, split="val=0.5", score=0.5):
        runs = {s: _record(f"{label}{s}", s, truth, predicted, h, split) for s, h in enumerate(hashes)}
        return Configuration(label, "eurosat", split, "val", "enc", head, score, runs)

    better = config("A", "linear", a, ["h0", "h1", "h2"], score=0.9)
    worse = config("B", "knn", b, ["h0", "h1", "x2"], score=0.6)  # seed 2 evaluated other images
    elsewhere = config("C", "mlp", b, ["y0", "y1", "y2"])
    old = Configuration("D", "eurosat", "val=0.5", "val", "enc", "logreg", 0.5, {0: {**better.runs[0], "run_id": "d",
                        "metrics": {"per_class": {}}}})
    other_split = config("E", "knn", b, ["h0"], split="val=0.2")
    result = comparisons([worse, better, elsewhere, old, other_split], record_statistic, ("accuracy", "macro_f1"))
    table = result.table
    assert list(zip(table["a"], table["b"])) == [("A", "B")]  # the more accurate first; E is on another split
    row = table.iloc[0]
    assert row["seeds"] == "0 1" and row["n_images"] == 80 and row["test"] == ""  # 2 seeds: no test
    assert row["accuracy_diff"] == pytest.approx(np.mean(a == truth) - np.mean(b == truth))
    assert row["accuracy_diff_boot95_low"] < row["accuracy_diff"] < row["accuracy_diff_boot95_high"]
    assert math.isnan(row["accuracy_p"]) and math.isnan(row["accuracy_p_holm"])
    assert any("A and C" in line and "other images" in line for line in result.not_compared)
    assert any("B and C" in line for line in result.not_compared) and len(result.not_compared) == 2
    assert result.unpairable == ["D (val=0.5)"]

    against = comparisons([worse, better, elsewhere], record_statistic, ("accuracy", "macro_f1"), baseline="knn")
    assert list(zip(against.table["a"], against.table["b"])) == [("A", "B")]  # C shares no images with knn
    assert len(against.not_compared) == 1 and "C and B" in against.not_compared[0]
