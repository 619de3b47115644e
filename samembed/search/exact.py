"""Exact top-k: the items streamed block by block (:meth:`Space.blocks`: float16 as stored, read
as float32 blocks of bounded size), one matrix product per block and a running top-k, so memory
follows the block, not the group."""

from __future__ import annotations

import numpy as np
import torch

from .space import Space


def merge_top(scores: torch.Tensor, items: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` highest of ``scores`` (with their ``items``)."""
    if len(scores) <= k:
        return scores, items
    top = torch.topk(scores, k, sorted=False)
    return top.values, items[top.indices]


def ranked(scores: np.ndarray, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(items, scores) by descending score; equal scores by item, so results never depend on the
    order blocks arrived in."""
    order = np.lexsort((items, -scores))
    return items[order], scores[order]


@torch.no_grad()
def exact_top_k(space: Space, weights: torch.Tensor, k: int, exclude=()) -> tuple[np.ndarray, np.ndarray]:
    """(items (k,) int64, raw scores (k,) float32) of the ``k`` rankable items with the highest
    ``x . weights``, leaving out the items in ``exclude``."""
    exclude = torch.as_tensor(sorted(int(i) for i in exclude), dtype=torch.int64)
    best_scores, best_items = torch.empty(0), torch.empty(0, dtype=torch.int64)
    w = weights.float()
    for block in space.blocks():
        scores = block.scores(w)
        scores[~block.valid] = -torch.inf
        items = torch.arange(block.first_item, block.first_item + len(scores))
        if len(exclude):
            inside = exclude[(exclude >= block.first_item) & (exclude < block.first_item + len(scores))]
            scores[inside - block.first_item] = -torch.inf
        keep = torch.isfinite(scores)
        s, i = merge_top(scores[keep], items[keep], k)
        best_scores, best_items = merge_top(torch.cat([best_scores, s]), torch.cat([best_items, i]), k)
    return ranked(best_scores.numpy(), best_items.numpy())


@torch.no_grad()
def row_scores(space: Space, weights: torch.Tensor, rows: np.ndarray) -> np.ndarray:
    """(len(rows), G * G) raw scores of every cell of the given rows (NaN where a cell holds no
    image); rows are read in contiguous runs."""
    rows = np.asarray(rows, np.int64)
    out = np.full((len(rows), space.per_row), np.nan, np.float32)
    if not len(rows):
        return out
    position = {int(r): p for p, r in enumerate(rows)}
    for start, stop in _runs(np.sort(rows)):
        for block in space.blocks(start, stop):
            scores = block.scores(weights.float()).reshape(-1, space.per_row).numpy()
            valid = block.valid.reshape(-1, space.per_row).numpy()
            for offset in range(block.stop - block.start):
                row = block.start + offset
                if row in position:
                    out[position[row]] = np.where(valid[offset], scores[offset], np.nan)
    return out


def _runs(rows: np.ndarray) -> list[tuple[int, int]]:
    """Sorted ``rows`` as (start, stop) runs of consecutive numbers."""
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    return [(int(part[0]), int(part[-1]) + 1) for part in np.split(rows, breaks)]
