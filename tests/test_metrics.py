"""classification_metrics: numbers checked by hand, absent classes, JSON round trip."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from samembed.classification.metrics import classification_metrics


def test_hand_computed_three_classes():
    # true a a a b b c, predicted a a b b c c
    # confusion: a -> [2, 1, 0], b -> [0, 1, 1], c -> [0, 0, 1]
    m = classification_metrics(np.array([0, 0, 0, 1, 1, 2]), np.array([0, 0, 1, 1, 2, 2]), ["a", "b", "c"])
    assert m["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert m["accuracy"] == pytest.approx(4 / 6)
    # a: TP 2 of 2 predicted, 3 true -> P 1, R 2/3, F1 = 2*(2/3)/(5/3) = 4/5
    # b: TP 1 of 2 predicted, 2 true -> P 1/2, R 1/2, F1 1/2
    # c: TP 1 of 2 predicted, 1 true -> P 1/2, R 1, F1 = 2*(1/2)/(3/2) = 2/3
    expected = {
        "a": (1.0, 2 / 3, 4 / 5, 3),
        "b": (1 / 2, 1 / 2, 1 / 2, 2),
        "c": (1 / 2, 1.0, 2 / 3, 1),
    }
    assert list(m["per_class"]) == ["a", "b", "c"]
    for name, (p, r, f1, support) in expected.items():
        got = m["per_class"][name]
        assert got["precision"] == pytest.approx(p)
        assert got["recall"] == pytest.approx(r)
        assert got["f1"] == pytest.approx(f1)
        assert got["support"] == support
    assert m["macro_f1"] == pytest.approx((4 / 5 + 1 / 2 + 2 / 3) / 3)  # 59/90


def test_class_never_predicted_and_class_absent_give_zero_without_warning():
    # z is never predicted (precision 0/0), w occurs nowhere (every ratio 0/0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = classification_metrics(np.array([0, 1, 2, 2]), np.array([0, 1, 1, 1]), ["x", "y", "z", "w"])
    assert m["per_class"]["z"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2}
    assert m["per_class"]["w"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    # y: TP 1 of 3 predicted, 1 true -> P 1/3, R 1, F1 = 2*(1/3)/(4/3) = 1/2
    assert m["per_class"]["y"]["precision"] == pytest.approx(1 / 3)
    assert m["per_class"]["y"]["f1"] == pytest.approx(1 / 2)
    assert m["per_class"]["x"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}
    assert m["accuracy"] == pytest.approx(0.5)
    assert m["macro_f1"] == pytest.approx((1 + 1 / 2 + 0 + 0) / 4)  # averaged over all 4 classes
    assert m["confusion_matrix"] == [[1, 0, 0, 0], [0, 1, 0, 0], [0, 2, 0, 0], [0, 0, 0, 0]]


def test_perfect_predictions():
    y = np.array([2, 0, 1, 1, 2, 2])
    m = classification_metrics(y, y.copy(), ["a", "b", "c"])
    assert m["accuracy"] == 1.0
    assert m["macro_f1"] == 1.0
    assert [c["support"] for c in m["per_class"].values()] == [1, 2, 3]
    assert all(c["precision"] == c["recall"] == c["f1"] == 1.0 for c in m["per_class"].values())
    assert m["confusion_matrix"] == [[1, 0, 0], [0, 2, 0], [0, 0, 3]]


def test_plain_python_types_and_json_round_trip():
    m = classification_metrics(np.array([0, 1, 1, 0], dtype=np.int64), np.array([0, 1, 0, 0], dtype=np.int32),
                               ["cat", "dog"])
    assert type(m["accuracy"]) is float and type(m["macro_f1"]) is float
    for c in m["per_class"].values():
        assert [type(c[k]) for k in ("precision", "recall", "f1", "support")] == [float, float, float, int]
    assert all(type(v) is int for row in m["confusion_matrix"] for v in row)
    assert json.loads(json.dumps(m, allow_nan=False)) == m


def test_bad_inputs_are_programming_errors():
    with pytest.raises(ValueError, match="outside"):
        classification_metrics(np.array([0, 3]), np.array([0, 1]), ["a", "b"])
    with pytest.raises(ValueError, match="labels"):
        classification_metrics(np.array([0, 1]), np.array([0]), ["a", "b"])
