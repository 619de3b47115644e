"""``retrieval``: similarity search scored like a head. Each evaluated image of a split is a query
against the training part (cosine on a pooled vector, as :func:`~samembed.search.search` ranks):
precision@k (:data:`K`) and average precision of the query's own class over the whole ranking of
the training images, averaged over the queries (mean average precision, mAP). Nothing is
trained; the predicted class of a query is its nearest training image's (1-NN), so the run's
accuracy and macro F1 sit in the classification summary beside every head's.

The record keeps every query's hits in the top k and average precision (``metrics.retrieval``),
so the report can give the interval over the evaluated images as it does for accuracy."""

from __future__ import annotations

import base64
import time
import zlib

import numpy as np
import torch
import torch.nn.functional as F

from ..experiments.kinds import HeadKind, Outcome, register_kind
from ..heads.registry import register_head

K = 10
BLOCK = 256  # queries ranked at a time: (BLOCK, training images) similarities in memory
SELECTION = "none: nothing is trained (each evaluated image a query against the training part)"


@torch.no_grad()
def retrieval_scores(x: torch.Tensor, labels: np.ndarray, queries: np.ndarray, database: np.ndarray, k: int = K,
                     block: int = BLOCK) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """((m,) hits of the query's class among its ``k`` nearest, (m,) average precision, (m,)
    class of its nearest) for each of ``queries`` (indices into ``x`` (N, D) and ``labels``)
    against ``database``. The ranking sorts by cosine, ties by database order (stable)."""
    xn = F.normalize(x.float(), dim=1)
    db = xn[torch.as_tensor(database, device=x.device)]
    db_labels = torch.as_tensor(np.asarray(labels)[database], device=x.device)
    k = min(k, len(database))
    hits, ap, nearest = (np.empty(len(queries), np.int64), np.empty(len(queries)), np.empty(len(queries), np.int64))
    ranks = torch.arange(1, len(database) + 1, device=x.device, dtype=torch.float64)
    for start in range(0, len(queries), block):
        part = np.asarray(queries[start:start + block])
        sims = xn[torch.as_tensor(part, device=x.device)] @ db.T  # (b, n)
        order = torch.sort(sims, dim=1, descending=True, stable=True).indices
        truth = torch.as_tensor(np.asarray(labels)[part], device=x.device)
        relevant = db_labels[order] == truth[:, None]  # (b, n) bool, ranked
        found = relevant.cumsum(1, dtype=torch.float64)
        total = found[:, -1].clamp(min=1)
        stop = start + len(part)
        hits[start:stop] = relevant[:, :k].sum(1).cpu().numpy()
        ap[start:stop] = ((found / ranks) * relevant).sum(1).div(total).cpu().numpy()
        nearest[start:stop] = db_labels[order[:, 0]].cpu().numpy()
    return hits, ap, nearest


def encode_values(values: np.ndarray) -> str:
    """(m,) floats in [0, 1] as zlib-compressed little-endian float16 in base64 (3 digits)."""
    return base64.b64encode(zlib.compress(np.asarray(values, "<f2").tobytes(), 9)).decode("ascii")


def decode_values(text: str) -> np.ndarray:
    return np.frombuffer(zlib.decompress(base64.b64decode(text)), "<f2").astype(np.float64)


def retrieval_field(hits: np.ndarray, ap: np.ndarray, k: int) -> dict:
    """The record's ``metrics.retrieval``: ``k``, the query count and each query's precision@k
    and average precision (in the order of the split's evaluated indices)."""
    return {"k": int(k), "queries": int(len(ap)), "encoding": "zlib-base64-f2",
            "precision_at_k": encode_values(hits / k), "average_precision": encode_values(ap)}


def recorded_retrieval(metrics: dict) -> tuple[np.ndarray, np.ndarray] | None:
    """((m,) precision@k, (m,) average precision) of a record's queries, or ``None``."""
    field = metrics.get("retrieval")
    if not field:
        return None
    return decode_values(field["precision_at_k"]), decode_values(field["average_precision"])


class Retrieval(HeadKind):
    """Retrieval scored on a split: nothing trained, one ranking per evaluated image."""

    name, task, input = "retrieval", "classification", "pooled"

    def fit(self, experiment, plans):
        for plan in plans:
            data = experiment.run_data(experiment.split(plan.split, plan.seed), plan.seed)
            x = experiment.pooled(plan.feature)
            t0 = time.perf_counter()
            hits, ap, nearest = retrieval_scores(x, experiment.labels, data.evaluate, data.train)
            k = min(K, len(data.train))
            metrics = {f"precision_at_{K}": float(np.mean(hits / k)), "mean_average_precision": float(np.mean(ap)),
                       "retrieval": retrieval_field(hits, ap, k)}
            yield plan, Outcome(nearest, time.perf_counter() - t0, {}, {"k": k, "selection": SELECTION},
                                {"metrics": metrics})


@register_head("retrieval", kind="retrieval",
               summary=f"similarity search scored: each evaluated image a query against the training part; "
                       f"precision@{K} and mAP of its class (cosine; its 1-NN class as the prediction)")
def retrieval_head(x: torch.Tensor, labels: np.ndarray, queries: np.ndarray, database: np.ndarray):
    """The head's function: :func:`retrieval_scores`."""
    return retrieval_scores(x, labels, queries, database)


register_kind(Retrieval())
