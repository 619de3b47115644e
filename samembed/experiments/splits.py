"""Train/validation splits of a cached dataset: stratified by class and seeded, so the same
labels, fraction and seed give the same indices for every head and every encoder."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import UsageError
from ..hashing import short_hash


@dataclass(frozen=True)
class Split:
    """Indices into the cache's image axis. ``name`` describes how it was made (``val=0.2``,
    ``shots=5``, ``standard``); ``test`` is empty unless the split defines one."""

    name: str
    seed: int
    train: np.ndarray  # (n_train,) int64, sorted
    val: np.ndarray  # (n_val,) int64, sorted
    test: np.ndarray  # (n_test,) int64, sorted

    @property
    def indices_hash(self) -> str:
        """Identifies the exact train, validation and test indices."""
        return short_hash([self.train.tolist(), self.val.tolist(), self.test.tolist()])


def _per_class(labels: np.ndarray, usable: np.ndarray, seed: int, class_names: list[str] | None):
    """For each class: its usable indices, shuffled by a generator seeded with (seed, class)."""
    for c in np.unique(labels[usable]):
        idx = np.flatnonzero((labels == c) & usable)
        rng = np.random.default_rng([seed, int(c)])
        yield (class_names[c] if class_names else str(c)), rng.permutation(idx)


def stratified_split(
    labels: np.ndarray, val_fraction: float, seed: int = 0, usable: np.ndarray | None = None,
    class_names: list[str] | None = None,
) -> Split:
    """``val_fraction`` of every class (rounded, at least one image) to validation, the rest to
    training. ``usable`` (bool mask) drops images, e.g. ones skipped as corrupt."""
    if not 0 < val_fraction < 1:
        raise UsageError(f"--split is the validation fraction and must lie strictly between 0 and 1, not {val_fraction}")
    usable = np.ones(len(labels), bool) if usable is None else usable
    train, val = [], []
    for name, idx in _per_class(labels, usable, seed, class_names):
        if len(idx) < 2:
            raise UsageError(f"class '{name}' has {len(idx)} image(s); a split needs at least 2 per class")
        n_val = min(max(int(round(val_fraction * len(idx))), 1), len(idx) - 1)
        val.append(idx[:n_val])
        train.append(idx[n_val:])
    return Split(f"val={val_fraction:g}", seed, np.sort(np.concatenate(train)), np.sort(np.concatenate(val)),
                 np.empty(0, np.int64))


def few_shot_split(
    labels: np.ndarray, shots: int, seed: int = 0, usable: np.ndarray | None = None,
    class_names: list[str] | None = None,
) -> Split:
    """``shots`` training images per class; every other usable image is validation."""
    if shots < 1:
        raise UsageError(f"--shots must be at least 1, not {shots}")
    usable = np.ones(len(labels), bool) if usable is None else usable
    train, val = [], []
    for name, idx in _per_class(labels, usable, seed, class_names):
        if len(idx) <= shots:
            raise UsageError(f"class '{name}' has {len(idx)} images, too few for --shots {shots} plus validation")
        train.append(idx[:shots])
        val.append(idx[shots:])
    return Split(f"shots={shots}", seed, np.sort(np.concatenate(train)), np.sort(np.concatenate(val)),
                 np.empty(0, np.int64))


def file_list_split(image_ids: list[str], lists: dict[str, list[str]], name: str = "standard") -> Split:
    """A split given by lists of file names (``train``, ``val``, ``test``), matched to the cache's
    image ids by file stem (the EuroSAT lists name ``.tif`` files; the RGB images are ``.jpg``)."""
    position = {_stem(i): k for k, i in enumerate(image_ids)}
    parts = {}
    for part in ("train", "val", "test"):
        names = lists.get(part, [])
        missing = [n for n in names if _stem(n) not in position]
        if missing:
            raise UsageError(
                f"{len(missing)} images of the {name} {part} list are not in the cache (first: {missing[0]}); "
                "the cache holds another dataset or version"
            )
        parts[part] = np.sort(np.array([position[_stem(n)] for n in names], dtype=np.int64))
    return Split(name, 0, parts["train"], parts["val"], parts["test"])


def _stem(name: str) -> str:
    base = name.strip().rsplit("/", 1)[-1]
    return base.rsplit(".", 1)[0]
