"""Train/validation splits of a cached dataset: what a split is (:class:`SplitSpec`, parsed and
checked once where the user gives it), and the indices it selects (:class:`Split`): stratified by
class and seeded, so the same labels, fraction and seed give the same indices for every head and
every encoder."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from .errors import UsageError
from .hashing import short_hash

SplitKind = Literal["val", "shots", "standard"]


@dataclass(frozen=True)
class SplitSpec:
    """How a run's images are split: ``val`` (that fraction of every class to validation,
    seeded), ``shots`` (that many training images per class, the rest validation) or ``standard``
    (the dataset's own published split, with a test part). ``name`` (``val=0.2``, ``shots=5``,
    ``standard``) is what run records and run ids hold."""

    kind: SplitKind
    value: float | int | None = None

    def __post_init__(self):
        if self.kind == "val" and not (isinstance(self.value, float) and 0 < self.value < 1):
            raise UsageError(f"--split is the validation fraction and must lie strictly between 0 and 1, not {self.value}")
        if self.kind == "shots" and not (isinstance(self.value, int) and self.value >= 1):
            raise UsageError(f"--shots must be at least 1, not {self.value}")
        if self.kind == "standard" and self.value is not None or self.kind not in ("val", "shots", "standard"):
            raise UsageError(f"unknown split {self.kind}={self.value}")

    @property
    def name(self) -> str:
        return "standard" if self.kind == "standard" else f"{self.kind}={self.value:g}"

    @classmethod
    def parse(cls, split: str | float | None = None, shots: int | None = None) -> SplitSpec:
        """The split of the command line's ``--split F|standard`` or ``--shots K``."""
        if shots is not None:
            if split is not None:
                raise UsageError("give either --split or --shots, not both")
            return cls("shots", _as_int(shots, "--shots"))
        if split is None:
            raise UsageError("give --split F (validation fraction, e.g. 0.2), --split standard, or --shots K")
        if str(split).strip() == "standard":
            return cls("standard")
        try:
            fraction = float(split)
        except ValueError:
            raise UsageError(f"--split must be a fraction between 0 and 1 or 'standard', not '{split}'") from None
        return cls("val", fraction)

    @classmethod
    def from_name(cls, name: str) -> SplitSpec:
        """The inverse of :attr:`name` (for records)."""
        if name == "standard":
            return cls("standard")
        kind, _, value = name.partition("=")
        return cls("shots", int(value)) if kind == "shots" else cls("val", float(value))

    @property
    def value_or_nan(self) -> float:
        return math.nan if self.value is None else float(self.value)


def _as_int(value, option: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise UsageError(f"{option} must be a whole number, not '{value}'") from None
    if number != float(value):
        raise UsageError(f"{option} must be a whole number, not '{value}'")
    return number


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
    split_name = SplitSpec("val", float(val_fraction)).name  # checks the fraction
    usable = np.ones(len(labels), bool) if usable is None else usable
    train, val = [], []
    for name, idx in _per_class(labels, usable, seed, class_names):
        if len(idx) < 2:
            raise UsageError(f"class '{name}' has {len(idx)} image(s); a split needs at least 2 per class")
        n_val = min(max(int(round(val_fraction * len(idx))), 1), len(idx) - 1)
        val.append(idx[:n_val])
        train.append(idx[n_val:])
    return Split(split_name, seed, np.sort(np.concatenate(train)), np.sort(np.concatenate(val)),
                 np.empty(0, np.int64))


def few_shot_split(
    labels: np.ndarray, shots: int, seed: int = 0, usable: np.ndarray | None = None,
    class_names: list[str] | None = None,
) -> Split:
    """``shots`` training images per class; every other usable image is validation."""
    split_name = SplitSpec("shots", shots).name  # checks the count
    usable = np.ones(len(labels), bool) if usable is None else usable
    train, val = [], []
    for name, idx in _per_class(labels, usable, seed, class_names):
        if len(idx) <= shots:
            raise UsageError(f"class '{name}' has {len(idx)} images, too few for --shots {shots} plus validation")
        train.append(idx[:shots])
        val.append(idx[shots:])
    return Split(split_name, seed, np.sort(np.concatenate(train)), np.sort(np.concatenate(val)),
                 np.empty(0, np.int64))


def fixed_split(image_ids: Sequence[str], parts: dict[str, Sequence[str]], usable: np.ndarray | None = None) -> Split:
    """The ``standard`` split from the image ids of each part (``train``, ``val``, ``test``) that
    the dataset publishes; ``usable`` drops images skipped as corrupt."""
    position = {str(i): k for k, i in enumerate(image_ids)}
    usable = np.ones(len(image_ids), bool) if usable is None else usable
    indices = {}
    for part in ("train", "val", "test"):
        names = parts.get(part, [])
        missing = [n for n in names if n not in position]
        if missing:
            raise UsageError(f"{len(missing)} images of the standard {part} part are not in the cache (first: "
                             f"{missing[0]}); the cache holds another dataset or version")
        found = np.array([position[n] for n in names], dtype=np.int64)
        indices[part] = np.sort(found[usable[found]]) if len(found) else found
    return Split("standard", 0, indices["train"], indices["val"], indices["test"])


def make_split(spec: SplitSpec, seed: int, labels: np.ndarray, usable: np.ndarray, class_names: list[str],
               fixed_parts: dict[str, Sequence[str]] | None = None, image_ids: Sequence[str] | None = None) -> Split:
    """The indices of ``spec`` for ``seed``. A ``standard`` split needs the dataset's
    ``fixed_parts`` (image ids per part) and the cache's ``image_ids``. A split without training
    or evaluation images is refused in one line."""
    split = _make(spec, seed, labels, usable, class_names, fixed_parts, image_ids)
    evaluated = split.test if len(split.test) else split.val
    if not len(split.train) or not len(evaluated):
        raise UsageError(f"split {spec.name} leaves {'no training' if not len(split.train) else 'no evaluation'} "
                         f"images ({int(np.sum(usable))} usable images in the cache)")
    return split


def _make(spec, seed, labels, usable, class_names, fixed_parts, image_ids) -> Split:
    if not usable.any():
        raise UsageError("the cache holds no usable image (every one was skipped as unreadable or holds no data; "
                         "`samembed info` counts them)")
    if spec.kind == "val":
        return stratified_split(labels, spec.value, seed, usable, class_names)
    if spec.kind == "shots":
        return few_shot_split(labels, spec.value, seed, usable, class_names)
    return fixed_split(image_ids, fixed_parts, usable)
