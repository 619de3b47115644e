"""The own-data path: the cache's only dataset is the default, datasets of one kind are named
(``extract folder --name``) and live side by side, and small splits and 16-bit images say what
to do."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

import samembed
from samembed.cli import app
from samembed.datasets import make_synthetic_dataset
from samembed.datasets.synthetic import make_synthetic_roads
from samembed.errors import SamembedWarning, UsageError

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def _folder(path, per_class: int, seed: int = 0):
    return make_synthetic_dataset(path, layout="folder", images_per_class=per_class, size=(40, 56),
                                  classes=["a", "b", "c"], suffix=".png", seed=seed)


def test_without_dataset_the_caches_only_dataset_is_used_and_several_are_listed(tmp_path, tiny_checkpoint):
    """Before: after `extract folder`, train-head said "no cache for dataset 'eurosat'"."""
    cache, runs = tmp_path / "cache", tmp_path / "runs"
    common = ["--cache-dir", cache, "--runs-dir", runs, "--device", "cpu"]
    extracted = invoke("extract", "folder", "--data-dir", _folder(tmp_path / "a", 4), "--checkpoint", tiny_checkpoint,
                       "--img-size", 64, "--cache-dir", cache, "-q")
    assert extracted.exit_code == 0, extracted.output
    trained = invoke("train-head", "--head", "knn", "--split", "0.5", *common)
    assert trained.exit_code == 0, trained.output
    assert "knn on neck, split val=0.5" in trained.output
    swept = invoke("sweep", "--heads", "knn", "--splits", "0.5", "--seeds", 2, "-q", *common)
    assert swept.exit_code == 0 and "1 new runs recorded" in swept.output, swept.output
    exported = invoke("export", "--out", tmp_path / "a.h5", "--cache-dir", cache)
    assert exported.exit_code == 0, exported.output

    samembed.extract("folder", name="tiles-2019", data_dir=_folder(tmp_path / "b", 3, seed=1),
                     checkpoint=tiny_checkpoint, img_size=64, cache_dir=cache, progress=False)
    for command in (["train-head", "--split", "0.5", *common], ["sweep", *common], ["export", "--cache-dir", cache],
                    ["prompt", "--image", "a/0.png", "--point", "1,1", "--cache-dir", cache]):
        result = invoke(*command)
        assert result.exit_code == 1 and result.output.strip().splitlines() == [
            f"error: {cache} holds several datasets (folder, tiles-2019); choose one with --dataset"], result.output
    missing = invoke("train-head", "--dataset", "eurosat", "--split", "0.5", *common)
    assert missing.output.strip() == (f"error: no cache for dataset 'eurosat' in {cache} (it holds folder, tiles-2019: "
                                      "choose one with --dataset); run `samembed extract eurosat` first")
    empty = invoke("train-head", "--split", "0.5", "--cache-dir", tmp_path / "none", "--runs-dir", runs)
    assert empty.exit_code == 1 and "no cache in" in empty.output


def test_named_folder_datasets_live_side_by_side_and_train(tmp_path, tiny_checkpoint):
    """Before: every custom folder was the dataset `folder`: a second one was a fingerprint mismatch."""
    cache, runs = tmp_path / "cache", tmp_path / "runs"
    first, second = _folder(tmp_path / "a", 4), _folder(tmp_path / "b", 3, seed=1)
    options = dict(checkpoint=tiny_checkpoint, img_size=64, cache_dir=cache, progress=False)
    samembed.extract("folder", data_dir=first, **options)
    with pytest.raises(samembed.SamembedError, match=r"dataset_fingerprint=.* \(other files: give them a store of "
                                                     r"their own with --name NAME\)"):
        samembed.extract("folder", data_dir=second, **options)
    for name, data in (("tiles-2019", first), ("tiles-2020", second)):
        result = samembed.extract("folder", name=name, data_dir=data, **options)
        assert result.encoded == len(list(data.rglob("*.png"))) and result.store.name == f"{name}.zarr"
    assert samembed.extract("folder", name="tiles-2019", data_dir=first, **options).encoded == 0  # resumes by name
    groups = {g.dataset: g for g in samembed.list_groups(cache)}
    assert set(groups) == {"folder", "tiles-2019", "tiles-2020"}
    assert groups["tiles-2020"].num_images == 9 and groups["tiles-2019"].num_images == 12
    assert groups["tiles-2020"].attrs["dataset_options"] == {"source": "folder"}
    common = dict(cache_dir=cache, runs_dir=runs, device="cpu", progress=False)
    records = samembed.sweep("tiles-2020", heads=["knn", "cnn"], splits=[0.4], epochs=1, **common)  # cnn reads images
    assert {r["cache"]["dataset"] for r in records} == {"tiles-2020"} and len(records) == 2
    record = samembed.train_head("tiles-2019", head="linear", split=0.5, epochs=1, cache_dir=cache, runs_dir=runs,
                                 device="cpu")
    assert record["cache"]["dataset"] == "tiles-2019" and record["split"]["n_train"] == 6
    report = samembed.write_report(runs, tmp_path / "report", dataset="tiles-2020")
    assert report.runs == 2


def test_a_named_segmentation_folder_trains_and_reads_its_masks(tmp_path, tiny_checkpoint):
    data = make_synthetic_roads(tmp_path / "roads", layout="seg-folder", counts=(6, 2, 2), size=48)
    samembed.extract("seg-folder", name="fields", data_dir=data, checkpoint=tiny_checkpoint, img_size=64,
                     cache_dir=tmp_path / "cache", progress=False)
    record = samembed.train_head("fields", head="sam-conv", split=0.3, epochs=1, cache_dir=tmp_path / "cache",
                                 runs_dir=tmp_path / "runs", device="cpu")
    assert record["task"] == "segmentation" and record["cache"]["dataset"] == "fields"
    assert record["cache"]["dataset_options"] == {"source": "seg-folder"}


@pytest.mark.parametrize("name, message", [
    ("../up", "--name must be letters, digits"), ("my tiles", "--name must be letters, digits"),
    ("x.zarr", "--name must be letters"), ("eurosat", "--name eurosat is the name of a built-in dataset")])
def test_an_unsafe_or_taken_name_is_refused_in_one_line(tmp_path, tiny_checkpoint, name, message):
    result = invoke("extract", "folder", "--name", name, "--data-dir", _folder(tmp_path / "a", 2), "--checkpoint",
                    tiny_checkpoint, "--img-size", 64, "--cache-dir", tmp_path / "cache", "-q")
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1 and message in result.output
    assert not (tmp_path / "cache").exists()


def test_an_unknown_dataset_name_points_at_extract_name():
    with pytest.raises(UsageError, match=r"unknown dataset 'tiles-2019'; choose one of: .*folder --name tiles-2019"):
        samembed.load_dataset("tiles-2019")


def test_a_validation_fraction_that_leaves_one_training_image_of_a_class_is_warned(tmp_path, embedding_cache):
    """5 classes x 40 images: --split 0.95 leaves 2 per class (no word), 0.99 leaves 1 (a warning);
    --shots 1 asks for one on purpose."""
    from samembed.splits import SplitSpec, make_split

    labels = np.repeat(np.arange(3), [40, 40, 3])
    usable = np.ones(len(labels), bool)
    with pytest.warns(SamembedWarning, match=r"split val=0.6 leaves 1 of 3 classes fewer than 2 training images "
                                             r"\(c\): a head learns each of them from one image"):
        make_split(SplitSpec("val", 0.6), 0, labels, usable, ["a", "b", "c"])
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make_split(SplitSpec("val", 0.2), 0, labels, usable, ["a", "b", "c"])
        make_split(SplitSpec("shots", 1), 0, labels, usable, ["a", "b", "c"])
        samembed.train_head("eurosat", head="knn", split=0.95, cache_dir=embedding_cache, runs_dir=tmp_path)
    with pytest.warns(SamembedWarning, match="split val=0.99 leaves 5 of 5 classes fewer than 2 training images"):
        samembed.train_head("eurosat", head="knn", split=0.99, cache_dir=embedding_cache, runs_dir=tmp_path)


def test_a_16_bit_image_in_a_folder_names_the_raster_folder_dataset(tmp_path, tiny_checkpoint):
    from PIL import Image

    data = _folder(tmp_path / "a", 2)
    Image.fromarray(np.full((20, 20), 40_000, np.uint16)).save(data / "a" / "deep.png")
    with pytest.raises(samembed.SamembedError, match="uint16 .*the raster-folder dataset names their bands"):
        samembed.extract("folder", data_dir=data, checkpoint=tiny_checkpoint, img_size=64, cache_dir=tmp_path / "c",
                         progress=False)
