"""Classification metrics of one run, as a plain JSON-serialisable dict."""

from __future__ import annotations

import base64
import zlib

import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, class_names: list[str]) -> dict:
    """Metrics of predictions ``y_pred`` against labels ``y_true`` (class indices into
    ``class_names``). Returns plain Python floats and ints only, so ``json.dumps`` works:

    - ``accuracy``: fraction of samples whose predicted class is the true class.
    - ``macro_f1``: unweighted mean of the per-class F1 over *all* classes in ``class_names``,
      including classes that occur in neither array (their F1 counts as 0).
    - ``per_class``: ``{name: {"precision", "recall", "f1", "support"}}`` in ``class_names``
      order; ``support`` is the number of samples of that true class. A ratio whose denominator
      is 0 (a class never predicted, or never present) is 0, without a warning.
    - ``confusion_matrix``: ``n x n`` list of lists of ints, ``n = len(class_names)``; entry
      ``[i][j]`` counts samples of true class ``i`` predicted as class ``j``.
    """
    y_true = np.asarray(y_true).ravel()
    y_pred = np.asarray(y_pred).ravel()
    n = len(class_names)
    if len(set(class_names)) != n:
        raise ValueError(f"class_names has duplicates: {class_names}")
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has {y_true.size} labels but y_pred has {y_pred.size}")
    if y_true.size == 0:
        raise ValueError("no predictions to score")
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.min() < 0 or y.max() >= n:
            raise ValueError(f"{name} holds class indices outside 0..{n - 1}")
    labels = list(range(n))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average=None, zero_division=0
    )
    per_class = {
        name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
               "support": int(support[i])}
        for i, name in enumerate(class_names)
    }
    return {
        "accuracy": float(np.mean(y_true == y_pred)),
        "macro_f1": float(np.mean(f1)),
        "per_class": per_class,
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


#: How :func:`encode_classes` writes class indices: zlib-compressed little-endian unsigned
#: integers (1 byte each up to 256 classes, else 2), in base64. About a byte per image (less when
#: compressed): 5,400 evaluated EuroSAT images take a few kilobytes of a run record.
ENCODINGS = {"zlib-base64-u1": "<u1", "zlib-base64-u2": "<u2"}


def encode_classes(classes: np.ndarray, num_classes: int) -> tuple[str, str]:
    """(encoding name, text) of (N,) class indices, for the run record (:data:`ENCODINGS`)."""
    name = "zlib-base64-u1" if num_classes <= 256 else "zlib-base64-u2"
    data = np.asarray(classes).astype(ENCODINGS[name]).tobytes()
    return name, base64.b64encode(zlib.compress(data, 9)).decode("ascii")


def decode_classes(encoding: str, text: str) -> np.ndarray:
    """(N,) int64 class indices written by :func:`encode_classes`."""
    if encoding not in ENCODINGS:
        raise ValueError(f"unknown class encoding {encoding!r}; known: {', '.join(ENCODINGS)}")
    return np.frombuffer(zlib.decompress(base64.b64decode(text)), dtype=ENCODINGS[encoding]).astype(np.int64)


def predictions_field(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> dict:
    """The record's ``metrics.predictions``: every evaluated image's true and predicted class,
    in the order of the split's evaluated indices (sorted), so that two runs on the same split and
    seed (equal ``indices_hash``) can be compared image by image (the report's paired
    differences)."""
    encoding, true = encode_classes(y_true, num_classes)
    _, predicted = encode_classes(y_pred, num_classes)
    return {"encoding": encoding, "true": true, "predicted": predicted}


def recorded_predictions(metrics: dict) -> tuple[np.ndarray, np.ndarray] | None:
    """((N,) true, (N,) predicted) classes of a record's ``metrics``, or ``None`` for records
    written before samembed kept them."""
    field = metrics.get("predictions")
    if not field:
        return None
    return decode_classes(field["encoding"], field["true"]), decode_classes(field["encoding"], field["predicted"])
