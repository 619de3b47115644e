"""Hyper-parameter selection for ``classic`` heads: one held-out part of the TRAINING set,
stratified by class and seeded, and the rule that picks the grid value scoring best on it.

The eval data never enters here: a head fits each grid value on the other part, scores accuracy
on the held-out part, picks with :func:`pick_best`, then refits on the whole training set."""

from __future__ import annotations

import numpy as np

from ..splits import stratified_split

HELD_OUT_FRACTION = 0.2


def hold_out(y_train: np.ndarray, seed: int, fraction: float = HELD_OUT_FRACTION) -> tuple[np.ndarray, np.ndarray] | str:
    """``(fit_idx, held_idx)``: ``fraction`` of every class (rounded, at least one, never all) held
    out, by :func:`~samembed.splits.stratified_split` seeded with ``seed``. Returns a
    one-line reason instead when some class has fewer than 2 training images (none can be held out)."""
    y = np.asarray(y_train)
    classes, counts = np.unique(y, return_counts=True)
    if len(classes) == 0:
        return "the training set is empty"
    if counts.min() < 2:
        c = classes[np.argmin(counts)]
        return f"class {c} has {counts.min()} training image(s), too few to hold any out"
    split = stratified_split(y, fraction, seed)
    return split.train, split.val


def pick_best(accuracies: dict) -> object:
    """The grid value with the highest held-out accuracy; ties go to the earliest in the grid."""
    best, best_acc = None, -1.0
    for value, acc in accuracies.items():
        if acc > best_acc:
            best, best_acc = value, acc
    return best


def accuracy(pred: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.asarray(pred) == np.asarray(y))) if len(y) else 0.0
