"""Classification's per-image data for the bootstrap: accuracy and macro F1 of resampled images,
from the true and predicted class of every evaluated image (``metrics.predictions`` of a run
record; docs/report.md).

Macro F1 of a resample averages the F1 of the classes present in the resample's truth: a class
that no drawn image belongs to has no recall to speak of, and scoring it 0 (as an average over
every class would) makes a classifier right on every image look worse on the resamples that
miss a class. On the evaluated images themselves every class is present (the classification
task refuses splits that leave one out), so this is the recorded macro F1."""

from __future__ import annotations

import numpy as np

from ..classification.metrics import recorded_predictions
from .resampling import Statistic

METRICS = ("accuracy", "macro_f1")


def macro_f1_present(tp: np.ndarray, true: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """(S,) macro F1 over the classes with ``true > 0``, from (S, C) true positives and the
    counts of each class in the truth and in the predictions."""
    denominator = true + predicted
    f1 = np.divide(2 * tp, denominator, out=np.zeros(tp.shape), where=denominator > 0)
    present = true > 0
    return (f1 * present).sum(1) / np.maximum(present.sum(1), 1)


def classification_statistic(truth: np.ndarray, predicted: np.ndarray, num_classes: int) -> Statistic:
    """``weights (s, n) -> (s, 2)`` accuracy and macro F1 (classes present in the resample's
    truth) of the images ``truth`` (n,) predicted as ``predicted`` (n,): one product of the
    weights with the images' indicator columns (right, and per class: right, true, predicted)."""
    eye = np.eye(num_classes, dtype=np.float32)
    true_hot, pred_hot = eye[truth], eye[predicted]  # (n, C)
    correct = (truth == predicted).astype(np.float32)
    columns = np.concatenate([correct[:, None], true_hot * correct[:, None], true_hot, pred_hot], axis=1)
    n, c = truth.size, num_classes

    def statistic(weights: np.ndarray) -> np.ndarray:
        sums = (weights @ columns).astype(np.float64)  # (s, 1 + 3C) whole counts, exact in float32 below 2^24
        tp, true, predicted_ = sums[:, 1:1 + c], sums[:, 1 + c:1 + 2 * c], sums[:, 1 + 2 * c:]
        return np.stack([sums[:, 0] / n, macro_f1_present(tp, true, predicted_)], axis=1)

    return statistic


def record_statistic(record: dict) -> tuple[Statistic, np.ndarray] | None:
    """(the run's statistic, its (n,) truth) from its record, or ``None`` for a record written
    before samembed kept each image's prediction (it cannot be paired)."""
    recorded = recorded_predictions(record["metrics"])
    if recorded is None:
        return None
    truth, predicted = recorded
    classes = len(record["metrics"]["per_class"])
    return classification_statistic(truth, predicted, classes), truth
