"""The approximate index: faiss's inverted file with 8-bit scalar quantisation (``IVF<lists>,SQ8``,
inner product on normalised vectors), built once per group, granularity and feature, and stored
beside the cache under the group's signature:

    <cache-dir>/<dataset>.search/<group>/<granularity>-<feature>.faiss   (faiss.serialize_index)
    <cache-dir>/<dataset>.search/<group>/<granularity>-<feature>.json    (what it was built from)

The JSON holds the key (:func:`index_key`: the signature's hash, the group, the granularity, the
feature and a hash of which items are rankable); an index whose key differs is refused by
:func:`open_index` and rebuilt by :func:`~samembed.search.api.search`. At build time the index
measures its own recall@10 against exact search on :data:`CALIBRATION` of its items and keeps the
smallest ``nprobe`` (lists visited per query) that reaches :data:`TARGET_RECALL`. A query takes
the :data:`RERANK` x k best candidates by the 8-bit codes and re-scores them exactly from the
stored vectors: the codes' rounding swaps near-equal neighbours, the re-scoring puts them back.

IVF rather than HNSW: its build is one k-means and one assignment pass (minutes for millions of
vectors on two cores, where HNSW's graph takes far longer), SQ8 keeps a byte per value (1.8 GB
for 6.9 M 256-d cells, against 7 GB as float32), and ``nprobe`` trades speed for recall at
query time. faiss: Johnson, Douze and Jégou, "Billion-scale similarity search with GPUs" (2019),
https://github.com/facebookresearch/faiss."""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import torch

from ..cache.location import cache_location
from ..errors import MissingExtraError, SignatureMismatchError, UsageError
from ..hashing import short_hash
from ..threads import stage_threads
from .exact import merge_top
from .space import Space

AUTO_ITEMS = 1_000_000  # index="auto": approximate above this many rankable items
MAX_LISTS = 1024
TRAIN_PER_LIST = 64  # k-means training vectors per list (faiss warns below 39)
TRAIN_BLOCKS = 8  # evenly spaced blocks the training sample is drawn from
CALIBRATION = 64
CALIBRATION_K = 10
TARGET_RECALL = 0.97
RERANK = 4  # candidates the codes give per hit wanted, re-scored exactly
INDEX_FORMAT = 2


def require_faiss():
    try:
        import faiss
    except ImportError:
        raise MissingExtraError('the approximate index needs faiss: pip install "samembed[search]" (or search with '
                                'index "exact")') from None
    return faiss


def faiss_available() -> bool:
    try:
        require_faiss()
        return True
    except MissingExtraError:
        return False


def index_key(space: Space) -> dict:
    """What an index is valid for: the group's signature and name, the granularity, the feature and
    which items are rankable (a group extended or re-flagged since gives another key)."""
    rankable = hashlib.sha256(np.packbits(space.valid_cells.reshape(-1)).tobytes()).hexdigest()[:16]
    return {"format": INDEX_FORMAT, "signature": short_hash(space.group.signature), "group": space.group.name,
            "granularity": space.granularity, "feature": space.feature, "items": space.items, "rankable": rankable}


def _where(space: Space) -> tuple:
    group = space.group
    location = group.location or cache_location(str(group.store).rstrip("/").rsplit("/", 1)[0])
    stem = f"{group.store_name.removesuffix('.zarr')}.search/{group.name}/{space.granularity}-{space.feature}"
    return location, stem


def index_path(space: Space) -> str:
    """Where the index of ``space`` is stored (for messages)."""
    location, stem = _where(space)
    return f"{location}/{stem}.faiss"


@dataclass
class ApproximateIndex:
    index: object  # faiss.IndexIVFScalarQuantizer
    meta: dict

    def search(self, weights: torch.Tensor, k: int, exclude=(), space: Space | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """(items, raw scores) of the ``k`` best items the index finds for ``weights``, none of
        ``exclude``: its :data:`RERANK` x ``k`` best by the 8-bit codes, re-scored exactly from
        the stored vectors of ``space`` (when given) and cut to ``k``. Lists visited are doubled
        until enough are found."""
        from .exact import ranked

        exclude = {int(i) for i in exclude}
        query = np.ascontiguousarray(weights.float().numpy()[None])
        wanted = k * (RERANK if space is not None else 1)
        nprobe = self.index.nprobe
        while True:
            scores, items = self.index.search(query, wanted + len(exclude))
            keep = [(i, s) for i, s in zip(items[0], scores[0]) if i >= 0 and i not in exclude][:wanted]
            if len(keep) >= min(wanted, self.meta["vectors"] - len(exclude)) or self.index.nprobe >= self.index.nlist:
                break
            self.index.nprobe = min(self.index.nlist, self.index.nprobe * 2)
        self.index.nprobe = nprobe
        found = np.array([i for i, _ in keep], np.int64)
        if space is None or not len(found):
            return found[:k], np.array([s for _, s in keep], np.float32)[:k]
        exact = (space.vectors(found) @ weights.float()).numpy()
        items, scores = ranked(exact, found)
        return items[:k], scores[:k]


def open_index(space: Space) -> ApproximateIndex | None:
    """The stored index of ``space``, or ``None`` if there is none; one line
    (:class:`SignatureMismatchError`) if it was built for another state of the group."""
    location, stem = _where(space)
    meta = location.read_file(stem + ".json")
    if meta is None:
        return None
    try:
        meta = json.loads(meta)
        stored = meta["key"]
    except (ValueError, KeyError, TypeError):
        raise SignatureMismatchError(f"the search index {location}/{stem}.faiss has unreadable metadata; delete it "
                                     "(search builds it again)") from None
    wanted = index_key(space)
    if stored != wanted:
        differs = next(k for k in sorted(set(stored) | set(wanted)) if stored.get(k) != wanted.get(k))
        raise SignatureMismatchError(f"the search index {location}/{stem}.faiss was built for another {differs} "
                                     f"({stored.get(differs)} there, {wanted.get(differs)} now): the group changed "
                                     "since; search with index 'auto' or 'approximate' builds it again")
    data = location.read_file(stem + ".faiss")
    if data is None:
        return None
    faiss = require_faiss()
    index = faiss.deserialize_index(np.frombuffer(data, np.uint8))
    index.nprobe = int(meta["nprobe"])
    return ApproximateIndex(index, meta)


def _training_sample(space: Space, size: int, seed: int = 0) -> np.ndarray:
    """About ``size`` rankable vectors from :data:`TRAIN_BLOCKS` evenly spaced blocks."""
    starts = np.unique(np.linspace(0, max(0, space.rows - space.block_rows), TRAIN_BLOCKS).astype(int))
    parts = []
    for start in starts:
        for block in space.blocks(int(start), min(space.rows, int(start) + space.block_rows)):
            parts.append(block.vectors[block.valid].numpy())
    x = np.concatenate(parts)
    if len(x) > size:
        x = x[np.sort(np.random.default_rng(seed).choice(len(x), size, replace=False))]
    return np.ascontiguousarray(x, np.float32)


def build_index(space: Space, progress=None) -> ApproximateIndex:
    """Build, calibrate and store the index of ``space``. ``progress(done rows, rows)`` is called
    after each block."""
    faiss = require_faiss()
    n = space.count
    if n < 2:
        raise UsageError(f"{space.group.where} has {n} rankable item(s): too few for an index; search exactly")
    t0 = time.perf_counter()
    faiss.omp_set_num_threads(stage_threads(faiss.omp_get_max_threads()))
    lists = int(max(1, min(MAX_LISTS, round(math.sqrt(n)), n // 39)))  # faiss's k-means wants 39 points a list
    quantizer = faiss.IndexFlatIP(space.dim)
    index = faiss.IndexIVFScalarQuantizer(quantizer, space.dim, lists, faiss.ScalarQuantizer.QT_8bit,
                                          faiss.METRIC_INNER_PRODUCT)
    index.train(_training_sample(space, TRAIN_PER_LIST * lists))
    calibration = space.sample(CALIBRATION, seed=1)
    queries = space.vectors(calibration)
    k = min(CALIBRATION_K, n - 1)
    best = [(torch.empty(0), torch.empty(0, dtype=torch.int64)) for _ in calibration]
    for block in space.blocks():
        items = torch.arange(block.first_item, block.first_item + len(block.raw))
        x, ids = block.vectors[block.valid], items[block.valid]
        index.add_with_ids(np.ascontiguousarray(x.numpy()), np.ascontiguousarray(ids.numpy()))
        scores = queries @ x.T  # (queries, m): the exact answer, from the same pass
        for q, item in enumerate(calibration):
            s = scores[q].clone()
            s[ids == int(item)] = -torch.inf  # a query is not its own neighbour
            top = merge_top(s, ids, k)
            best[q] = merge_top(torch.cat([best[q][0], top[0]]), torch.cat([best[q][1], top[1]]), k)
        if progress:
            progress(block.stop, space.rows)
    exact = [set(items.tolist()) for _, items in best]
    nprobe, recall = _calibrate(index, queries, calibration, exact, k)
    meta = {"key": index_key(space), "type": f"IVF{lists},SQ8", "metric": "inner product (cosine)", "lists": lists,
            "nprobe": nprobe, "rerank": RERANK, f"recall_at_{k}": recall, "calibration_queries": len(calibration),
            "vectors": int(index.ntotal), "faiss": faiss.__version__, "seconds": round(time.perf_counter() - t0, 2),
            "built": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    index.nprobe = nprobe
    location, stem = _where(space)
    location.write_file(stem + ".faiss", faiss.serialize_index(index))
    location.write_file(stem + ".json", json.dumps(meta, indent=1).encode())  # last: it makes the pair valid
    return ApproximateIndex(index, meta)


def _calibrate(index, queries: torch.Tensor, calibration: np.ndarray, exact: list[set], k: int) -> tuple[int, float]:
    """The smallest power-of-two ``nprobe`` whose recall@k after re-scoring (the share of the
    exact top k among the :data:`RERANK` x k candidates) reaches :data:`TARGET_RECALL` (all lists
    where none does), and its recall."""
    x = np.ascontiguousarray(queries.numpy())
    nprobe = 1
    while True:
        index.nprobe = nprobe
        _, found = index.search(x, RERANK * k + 1)  # re-scored exactly, the exact top k among them is found
        recall = float(np.mean([len(exact[q] & (set(found[q].tolist()) - {int(calibration[q])})) / max(1, len(exact[q]))
                                for q in range(len(exact))]))
        if recall >= TARGET_RECALL or nprobe >= index.nlist:
            return nprobe, round(recall, 4)
        nprobe = min(index.nlist, nprobe * 2)
