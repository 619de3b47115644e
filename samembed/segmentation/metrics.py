"""Binary segmentation metrics of the road (foreground) class, from pixel counts.

``micro_*`` metrics pool the pixels of all evaluated images; ``per_image`` metrics are computed
for each image and then summarised (the study plots their distribution). For a binary mask the
road class's F1 equals its Dice. A ratio whose denominator is 0 (no road in the truth and none
predicted) counts as 1: nothing to find and nothing found."""

from __future__ import annotations

import numpy as np

METRIC_NAMES = ("pixel_accuracy", "dice", "iou", "precision", "recall", "f1")


def pixel_counts(pred: np.ndarray, truth: np.ndarray) -> dict[str, int]:
    """True/false positives and negatives of bool arrays of the same shape."""
    pred, truth = np.asarray(pred, bool), np.asarray(truth, bool)
    tp = int(np.count_nonzero(pred & truth))
    fp = int(np.count_nonzero(pred & ~truth))
    fn = int(np.count_nonzero(~pred & truth))
    return {"tp": tp, "fp": fp, "fn": fn, "tn": int(pred.size) - tp - fp - fn}


def _ratio(a: int, b: int) -> float:
    return a / b if b else 1.0


def scores(c: dict[str, int]) -> dict[str, float]:
    """Pixel accuracy, Dice, IoU, precision, recall and F1 of the road class from counts."""
    tp, fp, fn, tn = c["tp"], c["fp"], c["fn"], c["tn"]
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    dice = _ratio(2 * tp, 2 * tp + fp + fn)
    return {"pixel_accuracy": _ratio(tp + tn, tp + fp + fn + tn), "dice": dice, "iou": _ratio(tp, tp + fp + fn),
            "precision": precision, "recall": recall, "f1": dice}


def segmentation_metrics(per_image: list[dict]) -> dict:
    """``per_image``: ``{"image_id", "tp", "fp", "fn", "tn"}`` per evaluated image. Returns
    ``micro_<metric>`` over all pixels, ``mean_<metric>`` over images, and the per-image rows with
    their own metrics added."""
    total = {k: sum(row[k] for row in per_image) for k in ("tp", "fp", "fn", "tn")}
    rows = [{**row, **scores(row)} for row in per_image]
    out = {f"micro_{k}": v for k, v in scores(total).items()}
    out.update({f"mean_{k}": float(np.mean([row[k] for row in rows])) for k in METRIC_NAMES})
    out["pixels"] = total
    out["per_image"] = rows
    return out
