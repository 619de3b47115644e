"""What the server holds: the cache's groups by a short key, each opened lazily (its index read on
first use, its predictor built on the first prompt), so a 27,000-image group opens at once.

Requests name a group by its key (``<dataset>/<group>``) and an image by its row in the group;
both are looked up here, never joined to a path."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..cache import CacheGroup, list_groups
from ..errors import SamembedError


class NotFound(Exception):
    """A key, row or file that the server does not hold: answered 404, whatever was asked."""


@dataclass
class GroupView:
    """One cache group as the server sees it: arrays read once on first use, the dataset index
    (where the images are read from) and the predictor made on first need, each under a lock."""

    key: str
    group: CacheGroup
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _index: dict | None = None
    _dataset = None
    _predictor = None
    prompt_lock: threading.Lock = field(default_factory=threading.Lock)

    def index(self) -> dict:
        """``ids`` (list of str), ``rows`` (id -> row), ``labels``, ``usable``, ``blank``,
        ``skipped`` ((N,) bool each) and ``subset`` (or ``None``), read on first use."""
        with self._lock:
            if self._index is None:
                group = self.group
                ids = [str(i) for i in group.read("image_ids")]
                ok, blank = group.read("ok"), group.blank()
                done = group.images_done()
                self._index = {
                    "ids": ids, "rows": {image_id: row for row, image_id in enumerate(ids)},
                    "labels": group.read("labels").astype(np.int64), "usable": ok & ~blank, "blank": blank,
                    "skipped": done & ~ok & ~blank,
                    "subset": [str(s) for s in group.read("subset")] if "subset" in group.group else None,
                    "scene": [str(s) for s in group.read("scene")] if "scene" in group.group else None,
                    "window": group.read("window") if "window" in group.group else None,
                }
            return self._index

    def row(self, value) -> int:
        """The row named by ``value`` (a row number as text, or an image id of the index)."""
        index = self.index()
        text = str(value)
        if text.isdigit() and int(text) < len(index["ids"]):
            return int(text)
        if text in index["rows"]:
            return index["rows"][text]
        raise NotFound(text)

    def dataset(self):
        """(DatasetIndex, {image id: its position}, composite or None): the dataset the cache was
        extracted from, where the extraction found it (the group's ``data_root``)."""
        with self._lock:
            if self._dataset is None:
                from ..datasets import load_dataset
                from ..datasets.composite import Composite

                group = self.group
                index = load_dataset(group.dataset, Path(group.attrs.get("data_root", "")),
                                     **group.attrs.get("dataset_options", {}))
                stored = group.signature.get("composite")
                self._dataset = (index, {i: k for k, i in enumerate(index.image_ids)},
                                 Composite.from_signature(stored) if stored else None)
            return self._dataset

    def predictor(self, checkpoint: str | Path | None = None):
        """The group's :class:`~samembed.prompting.predictor.CachePredictor`, made once."""
        with self._lock:
            if self._predictor is None:
                from ..prompting.predictor import CachePredictor

                self._predictor = CachePredictor(self.group, checkpoint)
            return self._predictor


class ServerState:
    """The folders the server may read (``cache_dir``, ``runs_dir``) and write (``out_dir``), and
    the cache's groups by key."""

    def __init__(self, cache_dir: str | Path, runs_dir: str | Path, out_dir: str | Path,
                 checkpoint: str | Path | None = None):
        self.cache_dir, self.runs_dir, self.out_dir = Path(cache_dir), Path(runs_dir), Path(out_dir)
        self.checkpoint = checkpoint
        self._groups: dict[str, GroupView] | None = None
        self._lock = threading.Lock()
        self.reports: dict[str, Path] = {}  # figure name -> file of the last report written

    def groups(self) -> dict[str, GroupView]:
        with self._lock:
            if self._groups is None:
                self._groups = {}
                for g in list_groups(self.cache_dir):
                    key = f"{g.store_name.removesuffix('.zarr')}/{g.name}"
                    self._groups[key] = GroupView(key, g)
            return self._groups

    def view(self, key: str) -> GroupView:
        view = self.groups().get(key)
        if view is None or view.group.problem:
            raise NotFound(key)
        return view

    def find_group(self, dataset: str, name: str) -> GroupView | None:
        return self.groups().get(f"{dataset}/{name}")


def one_line(err: SamembedError) -> str:
    return str(err).splitlines()[0] if str(err) else type(err).__name__
