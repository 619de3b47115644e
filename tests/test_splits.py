"""Splits: stratified, seeded, stable across encoders, few-shot, file lists, impossible requests."""

from __future__ import annotations

import numpy as np
import pytest

from samembed.errors import UsageError
from samembed.datasets.eurosat import standard_split
from samembed.splits import SplitSpec, few_shot_split, fixed_split, stratified_split

LABELS = np.repeat(np.arange(4), [30, 20, 10, 40])


def test_stratified_split_keeps_class_proportions():
    split = stratified_split(LABELS, 0.2, seed=0)
    assert len(np.intersect1d(split.train, split.val)) == 0
    assert len(split.train) + len(split.val) == len(LABELS)
    assert np.bincount(LABELS[split.val]).tolist() == [6, 4, 2, 8]
    assert np.bincount(LABELS[split.train]).tolist() == [24, 16, 8, 32]


def test_same_seed_same_indices_other_seed_other_indices():
    a, b = stratified_split(LABELS, 0.3, 1), stratified_split(LABELS, 0.3, 1)
    assert np.array_equal(a.val, b.val) and a.indices_hash == b.indices_hash
    c = stratified_split(LABELS, 0.3, 2)
    assert not np.array_equal(a.val, c.val) and a.indices_hash != c.indices_hash


def test_a_class_is_split_the_same_whatever_the_other_classes():
    """Each class is shuffled by its own (seed, class) generator: removing a class does not move
    the others' indices (so a skipped image in one class leaves the rest of the split alone)."""
    full = stratified_split(LABELS, 0.2, 0)
    usable = LABELS != 1
    partial = stratified_split(LABELS, 0.2, 0, usable=usable)
    assert np.array_equal(full.val[LABELS[full.val] != 1], partial.val)
    assert not np.isin(np.flatnonzero(~usable), np.concatenate([partial.train, partial.val])).any()


def test_few_shot_split():
    split = few_shot_split(LABELS, 5, seed=0)
    assert np.bincount(LABELS[split.train]).tolist() == [5, 5, 5, 5]
    assert len(split.val) == len(LABELS) - 20
    with pytest.raises(UsageError, match="too few"):
        few_shot_split(LABELS, 10)  # class 2 has 10 images: none left for validation


@pytest.mark.parametrize("fraction", [0, 1, -0.1, 1.5])
def test_fraction_outside_the_open_interval_is_refused(fraction):
    with pytest.raises(UsageError, match="strictly between 0 and 1"):
        stratified_split(LABELS, fraction)
    with pytest.raises(UsageError, match="strictly between 0 and 1"):
        SplitSpec.parse(fraction)


def test_a_class_with_one_image_cannot_be_split():
    labels = np.array([0, 0, 0, 1])
    with pytest.raises(UsageError, match="class 'b' has 1 image"):
        stratified_split(labels, 0.5, class_names=["a", "b"])


def test_a_split_is_parsed_and_checked_once_and_names_itself():
    assert SplitSpec.parse("0.2") == SplitSpec("val", 0.2) and SplitSpec.parse("0.2").name == "val=0.2"
    assert SplitSpec.parse(None, 5) == SplitSpec("shots", 5) and SplitSpec("shots", 5).name == "shots=5"
    assert SplitSpec.parse("standard").name == "standard" and SplitSpec.parse(" standard ").kind == "standard"
    for name in ("val=0.2", "val=0.35", "shots=5", "standard"):
        assert SplitSpec.from_name(name).name == name
    for bad in [("x", None), (None, None), ("0.2", 3), (None, 0), ("1", None), ("0", None), (None, 2.5)]:
        with pytest.raises(UsageError):
            SplitSpec.parse(*bad)


def test_a_fixed_split_takes_the_ids_the_dataset_publishes_and_drops_unusable_images():
    ids = ["A/A_1.jpg", "A/A_2.jpg", "B/B_1.jpg", "B/B_2.jpg"]
    split = fixed_split(ids, {"train": ["A/A_1.jpg", "B/B_2.jpg"], "val": ["A/A_2.jpg"], "test": ["B/B_1.jpg"]})
    assert split.train.tolist() == [0, 3] and split.val.tolist() == [1] and split.test.tolist() == [2]
    usable = np.array([True, True, True, False])
    assert fixed_split(ids, {"train": ["A/A_1.jpg", "B/B_2.jpg"]}, usable).train.tolist() == [0]
    with pytest.raises(UsageError, match="not in the cache"):
        fixed_split(ids, {"train": ["C/C_9.jpg"]})


def test_eurosats_standard_lists_name_files_by_stem(tmp_path, monkeypatch):
    import samembed.datasets.eurosat as eurosat

    ids = ["A/A_1.jpg", "A/A_2.jpg", "B/B_1.jpg", "B/B_2.jpg"]
    lists = {"train": ["A_1.tif", "B_2.tif"], "val": ["A_2.tif"], "test": ["B_1.tif"]}
    monkeypatch.setattr(eurosat, "standard_split_lists", lambda data_dir, download: lists)
    assert standard_split(ids, None, tmp_path, False) == {"train": ["A/A_1.jpg", "B/B_2.jpg"], "val": ["A/A_2.jpg"],
                                                          "test": ["B/B_1.jpg"]}
    monkeypatch.setattr(eurosat, "standard_split_lists", lambda data_dir, download: {"train": ["C_9.tif"]})
    with pytest.raises(UsageError, match="not in this dataset"):
        standard_split(ids, None, tmp_path, False)
