"""``knn``: weighted k-nearest-neighbour vote on cosine similarity, as in the DINO kNN protocol
(L2-normalised features, weights exp(similarity / T), T = 0.07); k from :data:`K_GRID` (capped at
the training size), chosen on a held-out 20 % of the training set, then eval is predicted with
the whole training set. Torch on the CPU, float32, in blocks of eval rows so memory stays bounded.

Many runs on the same images (a sweep's splits and seeds) share one Gram matrix:
:func:`fit_predict_many` computes the similarities of each block of rows with every image once,
and each run takes its own queries and training columns from the block (``fit_predict.many``)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .registry import register_head
from .selection import accuracy, hold_out, pick_best

K_GRID = (5, 10, 20, 50)
DEFAULT_K = 20
TEMPERATURE = 0.07
BLOCK = 1024


def _normalised(x: np.ndarray) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    return F.normalize(t, dim=1)


@torch.no_grad()
def knn_predict(train: torch.Tensor, labels: torch.Tensor, queries: torch.Tensor, ks: list[int],
                num_classes: int, temperature: float = TEMPERATURE, block: int = BLOCK) -> dict[int, np.ndarray]:
    """Predictions (m,) int64 for every k in ``ks`` (each at most ``len(train)``) from one top-k
    search: rows of ``train`` and ``queries`` are L2-normalised; a query's k most similar training
    rows vote with weights exp(similarity / temperature); ties go to the lower class index."""
    kmax = max(ks)
    out = {k: np.empty(len(queries), np.int64) for k in ks}
    for start in range(0, len(queries), block):
        sims = queries[start:start + block] @ train.T  # (b, n)
        top_sim, top_idx = sims.topk(kmax, dim=1)  # sorted, most similar first
        weights = (top_sim / temperature).exp()
        top_labels = labels[top_idx]
        for k in ks:
            votes = torch.zeros(len(top_idx), num_classes, dtype=torch.float32)
            votes.scatter_add_(1, top_labels[:, :k], weights[:, :k])
            out[k][start:start + len(top_idx)] = votes.argmax(dim=1).numpy()
    return out


def _plan(y_train: np.ndarray, seed: int) -> tuple[np.ndarray | None, np.ndarray | None, list[int], str]:
    """The held-out part of one run: (fit positions, held positions, k grid, reason) with
    positions into its training set; ``None``s and the reason when nothing can be held out."""
    held = hold_out(y_train, seed)
    if isinstance(held, str):
        return None, None, [], held
    fit_idx, val_idx = held
    return fit_idx, val_idx, list(dict.fromkeys(min(k, len(fit_idx)) for k in K_GRID)), ""


def _info(k: int, selection: str, scores: dict) -> dict:
    return {"k": int(k), "selection": selection, "held_out_accuracy": {str(g): a for g, a in scores.items()},
            "temperature": TEMPERATURE}


@torch.no_grad()
def fit_predict_many(x: np.ndarray, labels: np.ndarray, runs: list[tuple[np.ndarray, np.ndarray, int]], *,
                     num_classes: int, block: int = BLOCK) -> list[tuple[np.ndarray, dict]]:
    """:func:`fit_predict` of every run ``(train indices, eval indices, seed)`` into ``x`` (N, D)
    and ``labels`` (N,), from one pass over blocks of rows of the Gram matrix of the normalised
    ``x``: each block's similarities with all N images are computed once, and each run votes
    for its queries in the block (held-out rows, then eval rows) from its own training columns."""
    labels = np.asarray(labels).astype(np.int64)
    num_classes = max(int(num_classes), int(labels.max()) + 1)
    xn = _normalised(x)
    y = torch.from_numpy(labels)
    jobs = []  # (run, phase, queries (sorted), columns, ks, out {k: predictions})
    plans = []
    for r, (train, evaluate, seed) in enumerate(runs):
        train, evaluate = np.asarray(train, np.int64), np.asarray(evaluate, np.int64)
        if len(train) == 0:
            raise ValueError("knn needs at least one training image")
        fit_pos, val_pos, grid, reason = _plan(labels[train], seed)
        plans.append((fit_pos, val_pos, grid, reason))
        if fit_pos is not None:
            jobs.append([r, "held", train[val_pos], train[fit_pos], grid])
        final = grid if fit_pos is not None else [min(DEFAULT_K, len(train))]
        jobs.append([r, "eval", evaluate, train, sorted(set(min(k, len(train)) for k in final))])
    outputs = {}
    for job in jobs:
        r, phase, queries, columns, ks = job
        order = np.argsort(queries, kind="stable")
        job += [order, queries[order], torch.from_numpy(columns), y[torch.from_numpy(columns)]]
        outputs[(r, phase)] = {k: np.empty(len(queries), np.int64) for k in ks}
    for start in range(0, len(xn), block):
        stop = min(start + block, len(xn))
        sims = None
        for r, phase, queries, columns, ks, order, ordered, cols_t, col_labels in jobs:
            lo, hi = np.searchsorted(ordered, [start, stop])
            if lo == hi:
                continue
            if sims is None:
                sims = xn[start:stop] @ xn.T  # (b, N): this block against every image, once
            rows = torch.from_numpy(ordered[lo:hi] - start)
            sub = sims[rows[:, None], cols_t[None, :]]  # (queries in the block, training columns)
            top_sim, top_idx = sub.topk(max(ks), dim=1)
            weights = (top_sim / TEMPERATURE).exp()
            top_labels = col_labels[top_idx]
            where = order[lo:hi]
            for k in ks:
                votes = torch.zeros(len(rows), num_classes, dtype=torch.float32)
                votes.scatter_add_(1, top_labels[:, :k], weights[:, :k])
                outputs[(r, phase)][k][where] = votes.argmax(dim=1).numpy()
    results = []
    for r, (train, evaluate, seed) in enumerate(runs):
        fit_pos, val_pos, grid, reason = plans[r]
        if fit_pos is None:
            k = min(DEFAULT_K, len(train))
            results.append((outputs[(r, "eval")][k], _info(k, f"k={k} without selection: {reason}", {})))
            continue
        truth = labels[np.asarray(train)[val_pos]]
        scores = {k: accuracy(outputs[(r, "held")][k], truth) for k in grid}
        k = pick_best(scores)
        results.append((outputs[(r, "eval")][k], _info(k, "k chosen on a held-out 20% of the training set", scores)))
    return results


@register_head("knn", kind="classic",
               summary="weighted kNN on cosine similarity (T=0.07, DINO protocol), k chosen on a held-out 20% of the training set")
def fit_predict(x_train: np.ndarray, y_train: np.ndarray, x_eval: np.ndarray, *, num_classes: int,
                seed: int) -> tuple[np.ndarray, dict]:
    y_train = np.asarray(y_train).astype(np.int64)
    if len(y_train) == 0:
        raise ValueError("knn needs at least one training image")
    num_classes = max(int(num_classes), int(y_train.max()) + 1)
    train = _normalised(x_train)
    labels = torch.from_numpy(y_train)

    held = hold_out(y_train, seed)
    if isinstance(held, str):
        k = min(DEFAULT_K, len(y_train))
        selection, scores = f"k={k} without selection: {held}", {}
    else:
        fit_idx, val_idx = held
        grid = list(dict.fromkeys(min(k, len(fit_idx)) for k in K_GRID))  # capped, order kept
        fit_t, val_t = torch.from_numpy(fit_idx), torch.from_numpy(val_idx)
        preds = knn_predict(train[fit_t], labels[fit_t], train[val_t], grid, num_classes)
        scores = {k: accuracy(preds[k], y_train[val_idx]) for k in grid}
        k, selection = pick_best(scores), "k chosen on a held-out 20% of the training set"

    queries = _normalised(x_eval)
    pred = knn_predict(train, labels, queries, [k], num_classes)[k] if len(queries) else np.empty(0, np.int64)
    return pred, _info(k, selection, scores)


fit_predict.many = fit_predict_many  # the Classic kind fits a sweep's knn runs in one pass
