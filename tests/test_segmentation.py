"""Segmentation: mask geometry, road and seg-folder datasets, masks in the cache, decoders and
the UNet baseline on generated roads, metrics, the report and the CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import samembed
from samembed.cli import app
from samembed.datasets import load_dataset, make_synthetic_roads
from samembed.encoders.tiny import build_sam
from samembed.errors import CheckpointError, DataNotFoundError, UsageError
from samembed.report import write_report
from samembed.datasets.masks import read_mask
from samembed.encoders.geometry import Geometry
from samembed.segmentation.metrics import pixel_counts, scores, segmentation_metrics

from markdown_tables import check_report_tables, parse_tables

IMG_SIZE = 128
HEAD_SETTINGS = {"sam-conv": 1e-3, "sam-vit": 1e-3, "unet": 3e-3}  # lr; 20 epochs, batch 4


@pytest.mark.parametrize("hw", [(37, 128), (128, 53), (61, 90), (128, 128), (9, 17)])
def test_mask_round_trip_through_resize_and_pad_is_exact(hw):
    rng = np.random.default_rng(sum(hw))
    mask = rng.random(hw) < 0.3
    geometry = Geometry(IMG_SIZE)
    canvas = geometry.mask_to_input(mask)
    h, w = geometry.input_shape(hw)
    assert max(h, w) == IMG_SIZE and not canvas[h:].any() and not canvas[:, w:].any()
    back = geometry.input_to_original(canvas.float(), hw, mode="nearest-exact") > 0.5
    assert np.array_equal(back.numpy(), mask)


def test_mask_targets_are_the_road_share_of_each_cell():
    mask = np.zeros((64, 32), bool)
    mask[:, :16] = True  # left half road: on the 128 canvas columns 0..31 of 64 used
    targets = Geometry(IMG_SIZE).mask_targets(mask, 32)
    assert targets.shape == (32, 32) and targets.dtype == torch.uint8
    assert (targets[:, :8] == 255).all() and (targets[:, 8:] == 0).all()  # padding and non-road are 0


def test_metrics_on_a_hand_checked_example():
    pred = np.array([[1, 1, 0], [0, 0, 0]], bool)
    truth = np.array([[1, 0, 0], [1, 0, 0]], bool)
    counts = pixel_counts(pred, truth)
    assert counts == {"tp": 1, "fp": 1, "fn": 1, "tn": 3}
    s = scores(counts)
    assert s["pixel_accuracy"] == pytest.approx(4 / 6) and s["dice"] == pytest.approx(0.5) == s["f1"]
    assert s["iou"] == pytest.approx(1 / 3) and s["precision"] == 0.5 and s["recall"] == 0.5
    empty = scores(pixel_counts(np.zeros((2, 2), bool), np.zeros((2, 2), bool)))
    assert empty["dice"] == 1.0 and empty["iou"] == 1.0
    m = segmentation_metrics([{"image_id": "a", **counts}, {"image_id": "b", "tp": 3, "fp": 0, "fn": 1, "tn": 0}])
    assert m["micro_dice"] == pytest.approx(2 * 4 / (2 * 4 + 1 + 2))
    assert m["mean_dice"] == pytest.approx((0.5 + 6 / 7) / 2)


def test_road_layout_variants_and_errors(tmp_path):
    root = make_synthetic_roads(tmp_path / "roads", counts=(3, 1, 2), mask_channels=3)
    (root / "Validation").rename(root / "validation")
    (root / "Train" / "label").rename(root / "Train" / "Label")
    nested = tmp_path / "outer"
    nested.mkdir()
    root.rename(nested / "tgrs-road")
    index = load_dataset("road", nested)
    assert index.subsets == ["train"] * 3 + ["val"] + ["test"] * 2
    assert index.image_ids[0] == "Train/image/image1.bmp" and index.mask_ids[0] == "Train/Label/1.bmp"
    assert read_mask(index.mask_path(0)).dtype == bool
    with pytest.raises(DataNotFoundError, match=r"kaggle.com/datasets/ipythonx/tgrs-road.*--data-dir"):
        load_dataset("road", tmp_path / "nowhere")
    with pytest.raises(DataNotFoundError, match="cannot be downloaded automatically"):
        load_dataset("road", None, download=True)
    (nested / "tgrs-road" / "Test" / "label" / "5.bmp").unlink()
    with pytest.raises(DataNotFoundError, match="image5.bmp has no mask"):
        load_dataset("road", nested)
    folder = make_synthetic_roads(tmp_path / "own", layout="seg-folder", counts=(2, 1, 1))
    own = load_dataset("seg-folder", folder)
    assert own.task == "segmentation" and own.subsets is None and len(own) == 4
    with pytest.raises(DataNotFoundError, match="no images/ and masks/ folders"):
        load_dataset("seg-folder", tmp_path)


def test_batched_sam_vit_decoder_equals_segment_anythings_decoder(tmp_path, monkeypatch):
    import samembed.heads.seg_vit as seg_vit

    ckpt = samembed.write_tiny_checkpoint(tmp_path / "t.pth")
    head = seg_vit.sam_vit_decoder((32, 8, 8), ckpt).eval()
    sam = build_sam()
    x = torch.randn(3, 32, 8, 8)
    pe = sam.prompt_encoder.pe_layer((8, 8)).unsqueeze(0)
    with torch.no_grad():
        batched = head(x)
        for i in range(3):
            single, _ = sam.mask_decoder(x[i:i + 1], pe, head.prompt_tokens, head.dense_prompt.expand(1, -1, 8, 8), False)
            assert torch.allclose(batched[i:i + 1], single, atol=1e-5)
    assert batched.shape == (3, 1, 32, 32)


@pytest.fixture(scope="module")
def road_runs(tmp_path_factory):
    """Generated roads (32/8/8 images of 32-96 px), a tiny checkpoint, extraction at 128, and one
    run of every segmentation head."""
    tmp = tmp_path_factory.mktemp("road")
    data = make_synthetic_roads(tmp / "data", counts=(32, 8, 8), size=64)
    ckpt = samembed.write_tiny_checkpoint(tmp / "t.pth")
    samembed.extract("road", data_dir=data, checkpoint=ckpt, img_size=IMG_SIZE, cache_dir=tmp / "cache",
                     progress=False, workers=0)
    records = {head: samembed.train_head("road", head=head, cache_dir=tmp / "cache", runs_dir=tmp / "runs",
                                         device="cpu", epochs=20, batch_size=4, lr=lr)
               for head, lr in HEAD_SETTINGS.items()}
    return tmp, records


def test_the_cache_holds_masks_and_the_fixed_split(road_runs):
    tmp, _ = road_runs
    group = samembed.open_cache(tmp / "cache", "road")
    assert group.task == "segmentation" and group.signature["mask_size"] == 32
    assert group.group["grid"].shape == (48, 32, 8, 8)  # the whole map by default
    assert group.group["mask"].shape == (48, 32, 32) and group.group["mask"].dtype == np.uint8
    assert list(group.read("subset")).count("test") == 8
    index = load_dataset("road", tmp / "data")
    i = 40
    expected = Geometry(IMG_SIZE).mask_targets(read_mask(index.mask_path(i)), 32).numpy()
    assert np.array_equal(group.read("mask")[i], expected)


@pytest.mark.parametrize("head", list(HEAD_SETTINGS))
def test_every_decoder_and_the_unet_learn_generated_roads(road_runs, head):
    tmp, records = road_runs
    record = records[head]
    m = record["metrics"]
    road_share = m["pixels"]["tp"] + m["pixels"]["fn"]
    road_share /= sum(m["pixels"].values())
    assert road_share < 0.25
    assert m["micro_dice"] > 0.45 and m["micro_dice"] > 2 * road_share  # chance Dice is about the road share
    assert m["evaluated_on"] == "test" and len(m["per_image"]) == 8 == record["split"]["n_test"]
    assert 1 <= m["best_epoch"] <= 20 and len(record["curves"]["val_dice"]) == 20
    assert m["best_epoch"] == int(np.argmax(record["curves"]["val_dice"])) + 1
    index = load_dataset("road", tmp / "data")
    for row in m["per_image"]:
        with Image.open(index.root / row["image_id"]) as img, \
                Image.open(__import__("pathlib").Path(record["predictions_dir"]) / row["prediction"]) as pred:
            assert pred.size == img.size  # predictions are at the original resolution
        assert row["tp"] + row["fp"] + row["fn"] + row["tn"] == img.size[0] * img.size[1]


@pytest.fixture(scope="module")
def small_roads(tmp_path_factory):
    """Generated roads with 8 training images (8/4/8), a tiny checkpoint, extraction at 128."""
    tmp = tmp_path_factory.mktemp("small-road")
    data = make_synthetic_roads(tmp / "data", counts=(8, 4, 8), size=64)
    ckpt = samembed.write_tiny_checkpoint(tmp / "t.pth")
    samembed.extract("road", data_dir=data, checkpoint=ckpt, img_size=IMG_SIZE, cache_dir=tmp / "cache",
                     progress=False, workers=0)
    return tmp


@pytest.mark.parametrize("head", ["sam-conv", "sam-vit"])
def test_every_decoder_learns_8_training_images_with_its_default_settings(small_roads, head):
    """8 images make one step an epoch: without the step floor sam-vit trained 20 steps and stayed
    at chance (Dice about the road share, best epoch 1); the floor trains it 500 steps."""
    record = samembed.train_head("road", head=head, cache_dir=small_roads / "cache", runs_dir=small_roads / "runs",
                                 device="cpu")
    m = record["metrics"]
    road_share = (m["pixels"]["tp"] + m["pixels"]["fn"]) / sum(m["pixels"].values())
    assert record["split"]["n_train"] == 8
    assert record["training"] == {"batch_size": 8, "epochs": 500, "steps": 500}
    assert record["config"]["settings"]["min_steps"] == 500 and len(record["curves"]["val_dice"]) == 20
    assert m["micro_dice"] > 0.4 and m["micro_dice"] > 2 * road_share, m["micro_dice"]


def test_runs_are_deterministic_and_resume(road_runs):
    tmp, records = road_runs
    again = samembed.train_head("road", head="sam-conv", cache_dir=tmp / "cache", runs_dir=tmp / "runs",
                                device="cpu", epochs=20, batch_size=4, lr=1e-3)
    assert again == records["sam-conv"]  # the same run is found, not trained again
    fresh = samembed.train_head("road", head="sam-conv", cache_dir=tmp / "cache", runs_dir=tmp / "runs2",
                                device="cpu", epochs=20, batch_size=4, lr=1e-3)
    assert fresh["metrics"]["micro_dice"] == records["sam-conv"]["metrics"]["micro_dice"]


def test_segmentation_report(road_runs, tmp_path):
    tmp, records = road_runs
    report = write_report(tmp / "runs", tmp_path / "report")
    names = {p.name for p in report.files}
    assert {"segmentation_runs.csv", "segmentation_summary.csv", "segmentation_per_image.csv",
            "segmentation_boxplots_road.png", "segmentation_examples_road.png", "report.md"} <= names
    assert "runs.csv" not in names  # no classification runs
    runs = pd.read_csv(tmp_path / "report" / "segmentation_runs.csv", dtype={"run_id": str})
    for _, row in runs.iterrows():
        record = next(r for r in records.values() if r["run_id"] == row["run_id"])
        assert row["micro_dice"] == record["metrics"]["micro_dice"] and row["mean_iou"] == record["metrics"]["mean_iou"]
    group = samembed.open_cache(tmp / "cache", "road").name
    assert set(runs["model"]) == {f"{group} · sam-conv", f"{group} · sam-vit", "unet (from scratch)"}
    per_image = pd.read_csv(tmp_path / "report" / "segmentation_per_image.csv")
    assert len(per_image) == 3 * 8
    for path in report.files:
        if path.suffix == ".png":
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "Segmentation summary" in markdown and "unet (from scratch)" in markdown
    check_report_tables(tmp_path / "report")
    summary = pd.read_csv(tmp_path / "report" / "segmentation_summary.csv")
    for m in ("micro_dice", "micro_iou", "mean_dice", "mean_pixel_accuracy"):  # the image interval of every metric
        assert (summary[f"{m}_boot95_low"] <= summary[f"{m}_mean"]).all()
        assert (summary[f"{m}_mean"] <= summary[f"{m}_boot95_high"]).all()
    differences = pd.read_csv(tmp_path / "report" / "segmentation_differences.csv")
    assert len(differences) == 3 and (differences["n_images"] == 8).all()  # every pair on the 8 test images
    for _, row in differences.iterrows():
        a, b = (summary.loc[summary["model"] == row[k], "micro_dice_mean"].iloc[0] for k in ("a", "b"))
        assert row["micro_dice_diff"] == pytest.approx(a - b, abs=1e-12) and a >= b
    caption = next(line for line in markdown.splitlines() if line.startswith("**Per-image pixel accuracy"))
    assert "95 % image interval" in caption and "Paired differences of that Dice" in caption
    assert f"{group} · sam-conv" not in caption and "sam-custom@" in caption  # the figures' short names

    against = write_report(tmp / "runs", tmp_path / "against", baseline="unet")
    assert set(against.differences["segmentation"]["b"]) == {"unet (from scratch)"}
    assert "segmentation_differences_road.png" in {p.name for p in against.files}


def test_segmentation_errors(road_runs, tmp_path):
    tmp, _ = road_runs
    with pytest.raises(UsageError, match="unknown segmentation head 'linear'; choose one of: sam-1point, .*, sam-conv, sam-vit, unet"):
        samembed.train_head("road", head="linear", cache_dir=tmp / "cache", runs_dir=tmp_path, device="cpu")
    with pytest.raises(UsageError, match="segmentation takes --split F or --split standard"):
        samembed.train_head("road", head="unet", shots=3, cache_dir=tmp / "cache", runs_dir=tmp_path, device="cpu")
    other = samembed.write_tiny_checkpoint(tmp_path / "other.pth", seed=1)
    with pytest.raises(CheckpointError, match="is not the checkpoint .* was extracted with"):
        samembed.train_head("road", head="sam-vit", checkpoint=other, cache_dir=tmp / "cache", runs_dir=tmp_path,
                            device="cpu")
    with pytest.raises(CheckpointError, match="is not there; pass --checkpoint"):
        samembed.train_head("road", head="sam-vit", checkpoint=tmp_path / "gone.pth", cache_dir=tmp / "cache",
                            runs_dir=tmp_path, device="cpu")
    with pytest.raises(DataNotFoundError, match="no road dataset"):
        samembed.train_head("road", head="unet", data_dir=tmp_path, cache_dir=tmp / "cache", runs_dir=tmp_path,
                            device="cpu")
    assert not (tmp_path / "runs.jsonl").exists()


def test_seg_folder_with_a_validation_fraction_says_what_was_selected(tmp_path):
    data = make_synthetic_roads(tmp_path / "own", layout="seg-folder", counts=(8, 2, 2), size=48)
    ckpt = samembed.write_tiny_checkpoint(tmp_path / "t.pth")
    samembed.extract("seg-folder", data_dir=data, checkpoint=ckpt, img_size=64, cache_dir=tmp_path / "cache",
                     progress=False, workers=0)
    record = samembed.train_head("seg-folder", head="sam-conv", split=0.25, epochs=2, cache_dir=tmp_path / "cache",
                                 runs_dir=tmp_path / "runs", device="cpu")
    assert record["metrics"]["evaluated_on"] == "val" and "selected on it" in record["metrics"]["selection"]
    assert record["split"]["n_val"] == 3 and record["split"]["n_test"] == 0


def test_road_from_the_cli(tmp_path):
    runner = CliRunner()
    data = tmp_path / "data"
    made = runner.invoke(app, ["synthetic", str(data), "--layout", "road", "--images-per-class", "6", "--size", "48"])
    assert made.exit_code == 0, made.output
    assert len(load_dataset("road", data)) == 6 + 1 + 1
    assert runner.invoke(app, ["tiny-checkpoint", str(tmp_path / "t.pth")]).exit_code == 0
    common = ["--cache-dir", str(tmp_path / "cache")]
    result = runner.invoke(app, ["extract", "road", "--data-dir", str(data), "--checkpoint", str(tmp_path / "t.pth"),
                                 "--img-size", "64", "--workers", "0", "-q", *common])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["train-head", "--dataset", "road", "--head", "sam-conv", "--epochs", "2", *common,
                                 "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    assert "split standard" in result.output and "test road Dice" in result.output
    result = runner.invoke(app, ["report", "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 0 and "segmentation_summary.csv" in result.output
    missing = runner.invoke(app, ["extract", "road", "--data-dir", str(tmp_path / "nowhere"), *common])
    assert missing.exit_code == 1 and len(missing.output.strip().splitlines()) == 1
    assert "kaggle.com" in missing.output


def test_a_report_of_both_tasks_has_both_sets_of_tables(road_runs, tmp_path):
    import shutil

    from samembed.cache.synthetic import write_embedding_cache

    tmp, _ = road_runs
    (tmp_path / "runs").mkdir()
    shutil.copy(tmp / "runs" / "runs.jsonl", tmp_path / "runs" / "runs.jsonl")
    write_embedding_cache(tmp_path / "cache")
    samembed.train_head("eurosat", head="linear", split=0.2, epochs=2, cache_dir=tmp_path / "cache",
                        runs_dir=tmp_path / "runs", device="cpu")
    samembed.train_head("road", head="sam-box", cache_dir=tmp / "cache", runs_dir=tmp_path / "runs", device="cpu")
    result = CliRunner().invoke(app, ["report", "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    # it printed "5 runs in 1 configurations", counting only the classification summary
    assert result.output.startswith("5 runs (1 classification, 4 segmentation) in 5 configurations; wrote ")
    report = write_report(tmp_path / "runs")
    names = {p.name for p in report.files}
    assert {"runs.csv", "summary.csv", "segmentation_summary.csv", "split_sweep_eurosat.png",
            "segmentation_boxplots_road.png"} <= names
    table = parse_tables((report.out / "report.md").read_text())
    seg = next(t for t in table if t["head"][:2] == ["dataset", "model"])
    zero_shot = next(row for row in seg["rows"] if "sam-box" in row[1])
    assert zero_shot[-1] == "–"  # s/epoch of a model that trains no epochs: it showed nan
    assert len(pd.read_csv(report.out / "runs.csv")) == 1
    assert len(pd.read_csv(report.out / "segmentation_runs.csv")) == 4
    only_unet = write_report(tmp_path / "runs", tmp_path / "u", head="unet")
    assert "runs.csv" not in {p.name for p in only_unet.files} and only_unet.runs == 1
