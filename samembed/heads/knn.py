"""``knn``: weighted k-nearest-neighbour vote on cosine similarity, as in the DINO kNN protocol
(L2-normalised features, weights exp(similarity / T), T = 0.07); k from :data:`K_GRID` (capped at
the training size), chosen on a held-out 20 % of the training set, then eval is predicted with
the whole training set. Torch on the CPU, float32, in blocks of eval rows so memory stays bounded."""

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
    info = {
        "k": int(k),
        "selection": selection,
        "held_out_accuracy": {str(g): a for g, a in scores.items()},
        "temperature": TEMPERATURE,
    }
    return pred, info
