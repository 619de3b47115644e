"""``search``: rank every image (or map cell) of one cache group by its likeness to a few
positives (and unlike a few negatives). docs/search.md."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Integral

import numpy as np
import pandas as pd
import torch

from ..errors import SignatureMismatchError, UsageError, capped, warn
from ..threads import cpu_threads
from .exact import exact_top_k
from .index import AUTO_ITEMS, RERANK, build_index, faiss_available, open_index
from .queries import MapPoint, Query, Resolver
from .read import memo, read_rows
from .scoring import BACKGROUND, BACKGROUND_SEED, check_mode, fewshot, neighbours
from .space import Space

INDEXES = ("exact", "approximate", "auto")


@dataclass(frozen=True)
class SearchResult:
    """What :func:`search` found. ``hits``: columns rank (1..k), row, id, score, label (str or
    None); at granularity ``cell`` also cell_y, cell_x and, where georeferenced, x, y (the cell's
    centre in map coordinates). ``heat_map``: float32 (H, W) scores over a scene at the grid's
    resolution (NaN where no cell holds data), with its affine ``heat_transform`` (a, b, c, d, e,
    f) in the scene's ``crs`` (WKT or EPSG:xxxx); ``None`` unless a cell search on chips of a
    georeferenced scene. ``description``: one line saying what was searched."""

    hits: pd.DataFrame
    heat_map: np.ndarray | None
    heat_transform: tuple | None
    crs: str | None
    description: str


def _as_list(queries, what: str) -> list:
    if isinstance(queries, (str, MapPoint, Integral)):
        return [queries]
    if isinstance(queries, np.ndarray):
        return queries.tolist()
    if not isinstance(queries, Sequence) and not hasattr(queries, "__iter__"):
        raise UsageError(f"{what} must be a list of image ids, row numbers or MapPoints")
    return list(queries)


def search(group, positives, negatives=(), *, mode: str = "neighbours", granularity: str = "image",
           feature: str | None = None, k: int = 100, index: str = "auto", progress=None) -> SearchResult:
    """Rank the items of ``group`` (a :class:`~samembed.cache.CacheGroup`) by ``mode``
    (``neighbours``: cosine to the positives' mean; ``fewshot``: a logistic regression of positives
    against negatives) at ``granularity`` (``image``: the pooled ``feature``, default the group's
    first; ``cell``: the stored grid map) and return the ``k`` best, the queries themselves left
    out. Queries: image ids, row numbers or :class:`MapPoint`. ``index``: ``exact`` (streamed),
    ``approximate`` (the stored faiss index, built on first use) or ``auto`` (approximate above
    :data:`~samembed.search.index.AUTO_ITEMS` items when faiss is installed). ``progress(done,
    total)`` follows an index build. Mistakes end in one line (:class:`~samembed.errors.UsageError`)."""
    group.check()
    check_mode(mode)
    if index not in INDEXES:
        raise UsageError(f"index must be 'exact', 'approximate' or 'auto', not '{index}'")
    if isinstance(k, bool) or not isinstance(k, Integral) or k < 1:
        raise UsageError(f"k must be a whole number of hits, at least 1, not {k!r}")
    space = Space(group, granularity, feature)
    resolver = Resolver(space)
    pos = [resolver.resolve(q) for q in _as_list(positives, "positives")]
    neg = [resolver.resolve(q) for q in _as_list(negatives, "negatives")]
    if not pos:
        raise UsageError("give at least one positive: an image id, a row number or a map point")
    both = {i for q in pos for i in q.items} & {i for q in neg for i in q.items}
    if both:
        raise UsageError(f"{len(both)} item(s) are both positive and negative (first: {_item_text(space, resolver, min(both))}); "
                         "give each once")
    exclude = {i for q in pos + neg for i in q.items}
    available = space.count - len(exclude)
    if k > available:
        raise UsageError(f"k={k} is more than the {available} item(s) {group.where} can rank at {granularity} "
                         f"granularity (queries left out); ask for at most {available}")
    with cpu_threads(torch.device("cpu")):
        scorer, background = _scorer(space, resolver, mode, pos, neg, exclude)
        method = _method(space, index)
        if method == "exact":
            items, raw = exact_top_k(space, scorer.weights, k, exclude)
        else:
            found = _index(space, progress)
            items, raw = found.search(scorer.weights, k, exclude, space)
            method = f"approximate ({found.meta['type']}, nprobe {found.index.nprobe}, {RERANK} x k re-scored, " \
                     f"calibrated recall@10 {found.meta.get('recall_at_10', float('nan')):.3f})"
        scores = np.asarray(scorer.finish(raw), np.float64)
        hits = _hits(space, resolver, items, scores)
        heat, transform, crs = None, None, None
        if granularity == "cell" and group.attrs.get("georef"):
            from .geo import Georef

            georef = Georef(space)
            scene = georef.scenes[pos[0].row]
            heat, transform = georef.heat_map(scene, scorer.weights, scorer.finish)
            crs = georef.crs(scene)
            hits["x"], hits["y"] = zip(*(georef.cell_centre(r, y, x) for r, y, x in
                                         zip(hits["row"], hits["cell_y"], hits["cell_x"]))) if len(hits) else ([], [])
        elif group.attrs.get("georef") and len(hits):
            from .geo import Georef

            crs = Georef(space).crs(str(read_rows(group, "scene", pos[0].row, pos[0].row + 1)[0]))
    description = (f"{mode} ({scorer.rule}) over {group.where} at {space.describe()}: positives "
                   f"{_texts(pos)}" + (f"; negatives {_texts(neg)}" if neg else "")
                   + (f"; {background} random background items" if background else "")
                   + f"; {method} top {k} of {space.count} items")
    return SearchResult(hits, heat, transform, crs, description)


def _texts(queries: list[Query]) -> str:
    return capped([q.text for q in queries], 3, 80)


def _item_text(space: Space, resolver: Resolver, item: int) -> str:
    row, cy, cx = space.split(item)
    return resolver.ids[row] + (f" cell y={cy} x={cx}" if space.granularity == "cell" else "")


def _scorer(space, resolver, mode, pos, neg, exclude):
    positives = resolver.vectors(pos)
    negatives = resolver.vectors(neg) if neg else None
    if mode == "neighbours":
        return neighbours(positives, negatives), 0
    background = 0
    if negatives is None:
        drawn = space.sample(max(BACKGROUND, 10 * len(pos)), BACKGROUND_SEED, exclude)
        negatives, background = space.vectors(drawn), len(drawn)
    return fewshot(positives, negatives, background > 0), background


def _method(space: Space, index: str) -> str:
    if index != "auto":
        return index
    if space.count <= AUTO_ITEMS:
        return "exact"
    if faiss_available():
        return "approximate"
    warn(f"{space.count} items searched exactly (slow at this size): the approximate index needs faiss, "
         'pip install "samembed[search]"')
    return "exact"


def _index(space: Space, progress):
    """The group's index, loaded (or built) once per opened group object."""

    def load():
        try:
            found = open_index(space)
        except SignatureMismatchError as err:
            warn(f"{err}; building it again now")
            found = None
        return found if found is not None else build_index(space, progress)

    return memo(space.group, ("index", space.granularity, space.feature), load)


def _hits(space: Space, resolver: Resolver, items: np.ndarray, scores: np.ndarray) -> pd.DataFrame:
    group = space.group
    rows = items // space.per_row
    labels = [None] * len(items)
    names = group.class_names
    if group.task == "classification" and len(names) >= 2:
        stored = read_rows(group, "labels")
        labels = [names[int(stored[r])] for r in rows]
    frame = pd.DataFrame({"rank": np.arange(1, len(items) + 1), "row": rows.astype(np.int64),
                          "id": [str(resolver.ids[r]) for r in rows], "score": scores, "label": labels})
    if space.granularity == "cell":
        cells = items % space.per_row
        frame["cell_y"], frame["cell_x"] = (cells // space.side).astype(np.int64), (cells % space.side).astype(np.int64)
    return frame
