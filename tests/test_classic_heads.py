"""The ``classic`` heads (``logreg``, ``knn``): accuracy on generated data, determinism, and a
hyper-parameter chosen on a held-out part of the training set only."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import samembed.heads.knn as knn
import samembed.heads.logreg as logreg
from samembed.heads import get_head
from samembed.heads.selection import hold_out, pick_best

HEADS = {"logreg": (logreg, "C", logreg.C_GRID), "knn": (knn, "k", knn.K_GRID)}


def blobs(seed: int, classes: int = 5, dim: int = 32, n_train: int = 60, n_eval: int = 40, spread: float = 6.0):
    """Gaussian blobs with unit variance around centres ``spread`` apart in scale."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((classes, dim)) * spread / np.sqrt(dim) * 2
    y_train = np.repeat(np.arange(classes), n_train)
    y_eval = np.repeat(np.arange(classes), n_eval)
    x_train = (centres[y_train] + rng.standard_normal((len(y_train), dim))).astype(np.float32)
    x_eval = (centres[y_eval] + rng.standard_normal((len(y_eval), dim))).astype(np.float32)
    return x_train, y_train, x_eval, y_eval


def noise(seed: int, classes: int = 5, dim: int = 32, n_train: int = 300, n_eval: int = 300):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n_train, dim)).astype(np.float32), rng.integers(0, classes, n_train),
            rng.standard_normal((n_eval, dim)).astype(np.float32), rng.integers(0, classes, n_eval))


@pytest.mark.parametrize("name", HEADS)
def test_separable_blobs_are_learned(name):
    module, key, grid = HEADS[name]
    x_train, y_train, x_eval, y_eval = blobs(0)
    pred, info = module.fit_predict(x_train, y_train, x_eval, num_classes=5, seed=0)
    assert pred.shape == (len(x_eval),) and pred.dtype == np.int64
    assert np.mean(pred == y_eval) > 0.95
    assert info[key] in grid
    assert info["selection"] == f"{key} chosen on a held-out 20% of the training set"
    assert list(info["held_out_accuracy"]) == [str(g) for g in grid]
    assert max(info["held_out_accuracy"].values()) > 0.95
    assert info["held_out_accuracy"][str(info[key])] == max(info["held_out_accuracy"].values())


@pytest.mark.parametrize("name", HEADS)
def test_noise_labels_stay_near_chance(name):
    module, _, _ = HEADS[name]
    x_train, y_train, x_eval, y_eval = noise(1)
    pred, info = module.fit_predict(x_train, y_train, x_eval, num_classes=5, seed=0)
    assert np.mean(pred == y_eval) < 0.5
    assert max(info["held_out_accuracy"].values()) < 0.5


@pytest.mark.parametrize("name", HEADS)
def test_same_seed_same_result_other_seed_other_held_out_part(name):
    module, _, _ = HEADS[name]
    x_train, y_train, x_eval, _ = noise(2)
    a = module.fit_predict(x_train, y_train, x_eval, num_classes=5, seed=3)
    b = module.fit_predict(x_train.copy(), y_train.copy(), x_eval.copy(), num_classes=5, seed=3)
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1] == b[1]
    c = module.fit_predict(x_train, y_train, x_eval, num_classes=5, seed=4)
    assert c[1]["held_out_accuracy"] != a[1]["held_out_accuracy"]  # the seed picks the held-out part


@pytest.mark.parametrize("name", HEADS)
def test_choice_does_not_depend_on_eval_data(name):
    module, key, grid = HEADS[name]
    x_train, y_train, _, _ = noise(5)
    rng = np.random.default_rng(6)
    evals = [
        rng.standard_normal((300, 32)).astype(np.float32),
        rng.standard_normal((7, 32)).astype(np.float32) * 100 + 50,  # other size, scale and offset
        x_train[::-1].copy(),  # the training images themselves
    ]
    infos = [module.fit_predict(x_train, y_train, x, num_classes=5, seed=0)[1] for x in evals]
    assert infos[0] == infos[1] == infos[2]
    assert infos[0][key] in grid
    assert set(infos[0]["held_out_accuracy"]) == {str(g) for g in grid}
    assert infos[0]["held_out_accuracy"][str(infos[0][key])] == max(infos[0]["held_out_accuracy"].values())


def test_pick_best_takes_the_highest_accuracy_and_the_earliest_of_ties():
    assert pick_best({5: 0.5, 10: 0.75, 20: 0.25, 50: 0.75}) == 10
    assert pick_best({0.01: 0.2, 0.1: 0.1}) == 0.01


def test_logreg_held_out_accuracy_is_computed_on_the_training_set_only():
    """Recompute the selection by hand: fit on 80 % of the training set, score on the other 20 %."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x_train, y_train, x_eval, _ = blobs(7, spread=1.0)
    _, info = logreg.fit_predict(x_train, y_train, x_eval, num_classes=5, seed=11)
    fit_idx, val_idx = hold_out(y_train, seed=11)
    assert len(val_idx) == 60 and len(np.intersect1d(fit_idx, val_idx)) == 0
    assert np.all(np.bincount(y_train[val_idx]) == 12)  # stratified: 20 % of every class
    for c in logreg.C_GRID:
        model = make_pipeline(StandardScaler(), LogisticRegression(C=c, solver="lbfgs", max_iter=1000))
        model.fit(x_train[fit_idx], y_train[fit_idx])
        expected = float(np.mean(model.predict(x_train[val_idx]) == y_train[val_idx]))
        assert info["held_out_accuracy"][str(c)] == pytest.approx(expected)
    assert info["converged"] is True


def test_logreg_says_when_lbfgs_did_not_converge(monkeypatch):
    from sklearn.exceptions import ConvergenceWarning

    monkeypatch.setattr(logreg, "MAX_ITER", 2)
    x_train, y_train, x_eval, _ = noise(13)
    with pytest.warns(ConvergenceWarning):
        _, info = logreg.fit_predict(x_train, y_train, x_eval, num_classes=5, seed=0)
    assert info["converged"] is False
    assert info["not_converged"].startswith("lbfgs stopped at max_iter=2 in: held-out fit C=0.01")
    assert "final fit" in info["not_converged"]


def test_logreg_class_with_one_training_image_falls_back_to_C_1():
    x_train, y_train, x_eval, y_eval = blobs(8, classes=3)
    keep = np.concatenate([np.flatnonzero(y_train != 2), np.flatnonzero(y_train == 2)[:1]])
    pred, info = logreg.fit_predict(x_train[keep], y_train[keep], x_eval, num_classes=3, seed=0)
    assert info["C"] == 1.0
    assert "without selection" in info["selection"] and "class 2 has 1 training image" in info["selection"]
    assert info["held_out_accuracy"] == {}
    assert pred.shape == (len(x_eval),)
    assert np.mean(pred[y_eval != 2] == y_eval[y_eval != 2]) > 0.95


def test_knn_k_never_exceeds_the_training_size():
    x_train, y_train, x_eval, _ = blobs(9, classes=3, n_train=4)  # 12 images, 9 left after holding out
    pred, info = knn.fit_predict(x_train, y_train, x_eval, num_classes=3, seed=0)
    assert list(info["held_out_accuracy"]) == ["5", "9"]
    assert info["k"] <= 9
    # one image per class: no selection, k capped at the 3 training images
    pred, info = knn.fit_predict(x_train[::4], y_train[::4], x_eval, num_classes=3, seed=0)
    assert info["k"] == 3 and "without selection" in info["selection"]
    assert pred.shape == (len(x_eval),)


def test_knn_duplicate_of_a_training_image_gets_its_label():
    """Random features with random labels: an exact copy of a training image has similarity 1,
    every other training image about 0, so its weight exp(1/T) dominates even k = 50 votes."""
    x_train, y_train, _, _ = noise(10, dim=64)
    queries = x_train[:100] * 3.0  # same direction, other norm: cosine similarity 1
    pred, info = knn.fit_predict(x_train, y_train, queries, num_classes=5, seed=0)
    np.testing.assert_array_equal(pred, y_train[:100])


def test_knn_vote_is_weighted_by_exp_similarity_over_T():
    """One neighbour of class 0 at similarity 1 against two of class 1 at 0.93: the majority says 1,
    exp(1/0.07) = 1.6e6 > 2 exp(0.93/0.07) = 1.2e6 says 0. With four at 0.93 (2.4e6), class 1 wins."""
    near = [0.93, float(np.sqrt(1 - 0.93**2))]
    train = torch.tensor([[1.0, 0.0], near, near, near, near, [-1.0, 0.0]])
    labels = torch.tensor([0, 1, 1, 1, 1, 2])
    query = torch.tensor([[1.0, 0.0]])
    out = knn.knn_predict(train, labels, query, [3, 5], num_classes=3)
    assert out[3].tolist() == [0]
    assert out[5].tolist() == [1]


def test_knn_blocks_give_the_same_answer():
    x_train, y_train, x_eval, _ = noise(12)
    train = torch.nn.functional.normalize(torch.from_numpy(x_train), dim=1)
    queries = torch.nn.functional.normalize(torch.from_numpy(x_eval), dim=1)
    labels = torch.from_numpy(y_train)
    whole = knn.knn_predict(train, labels, queries, [5, 20], num_classes=5, block=10_000)
    blocked = knn.knn_predict(train, labels, queries, [5, 20], num_classes=5, block=50)
    for k in (5, 20):
        np.testing.assert_array_equal(whole[k], blocked[k])


def test_both_heads_are_in_the_registry():
    assert get_head("knn").kind == "classic"
    assert get_head("logreg").kind == "classic"
    assert get_head("knn").factory is knn.fit_predict
    assert get_head("logreg").factory is logreg.fit_predict


def test_knn_of_many_runs_from_one_gram_matrix_equals_each_run_alone():
    """A sweep's knn runs share one pass over the Gram matrix; each equals fit_predict on its own
    (with and without a held-out part, queries in any order, k capped at small training sets)."""
    from samembed.heads.knn import fit_predict, fit_predict_many

    rng = np.random.default_rng(3)
    labels = np.repeat(np.arange(4), 30)
    x = (rng.normal(0, 1, (4, 8))[labels] + rng.normal(0, 1.2, (120, 8))).astype(np.float32)
    runs = []
    for seed in range(3):
        perm = rng.permutation(120)
        runs.append((np.sort(perm[:70]), perm[70:], seed))  # eval rows unsorted
    runs.append((np.array([0, 30, 60, 90]), np.arange(1, 120, 7), 5))  # one image a class: no held-out part
    runs.append((np.arange(0, 120, 9), np.arange(1, 120, 3), 6))  # k grid capped
    many = fit_predict_many(x, labels, runs, num_classes=4, block=16)
    for (train, evaluate, seed), (pred, info) in zip(runs, many):
        alone, alone_info = fit_predict(x[train], labels[train], x[evaluate], num_classes=4, seed=seed)
        assert np.array_equal(pred, alone) and info == alone_info
    assert "without selection" in many[3][1]["selection"] and many[0][1]["selection"].startswith("k chosen")
