"""VGG19 and DINOv2 in the encoder registry, the from-scratch classification baselines, and a
report that puts SAM, VGG19, DINOv2 and from-scratch runs side by side."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import samembed
from samembed.datasets import make_synthetic_dataset
from samembed.errors import CheckpointError, UsageError
from samembed.report import write_report

ENCODERS = [  # (encoder, model, img_size, group, pooled arrays, map channels)
    ("vgg19", "random", 64, "vgg19-random@64", {"gap": 512}, 512),
    ("dinov2", "vits14-random", 56, "dinov2-vits14-random@56", {"cls": 384, "mean": 384}, 384),
    ("dinov2", "vitb14-random", 28, "dinov2-vitb14-random@28", {"cls": 768, "mean": 768}, 768),
]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_synthetic_dataset(tmp_path_factory.mktemp("enc") / "data", images_per_class=6, jitter=20)


@pytest.mark.parametrize("encoder, model, size, group, pooled, channels", ENCODERS)
def test_each_encoder_extracts_with_its_shapes_and_signature(data, tmp_path, encoder, model, size, group, pooled,
                                                             channels):
    result = samembed.extract("eurosat", data_dir=data, encoder=encoder, model=model, img_size=size,
                              cache_dir=tmp_path, progress=False, workers=0)
    assert result.group == group and result.encoded == 60
    g = samembed.open_cache(tmp_path, "eurosat", group)
    for name, width in pooled.items():
        assert g.group[name].shape == (60, width) and np.isfinite(g.read(name)).all()
    side = size // (16 if encoder == "vgg19" else 14)
    assert g.group["grid"].shape == (60, channels, side, side)
    assert g.attrs["pooled"] == list(pooled)
    sig = g.signature["encoder"]
    assert sig["encoder"] == encoder and sig["img_size"] == size and sig["weights"] == "random, seed 0"
    assert "ImageNet" in sig["preprocessing"]
    # The pooled vector is the map's mean over the cells that cover the (square) image.
    if encoder == "dinov2":
        assert np.allclose(g.read("mean"), g.read("grid").astype(np.float32).mean(axis=(2, 3)), atol=2e-2)


def test_local_weight_files_give_the_same_embeddings_as_the_same_weights_built_in(data, tmp_path):
    import timm
    from torchvision.models import vgg19

    torch.manual_seed(0)
    torch.save({f"features.{k}": v for k, v in vgg19(weights=None).features.state_dict().items()}, tmp_path / "vgg.pth")
    torch.manual_seed(0)
    torch.save(timm.create_model("vit_small_patch14_dinov2", img_size=56, num_classes=0).state_dict(), tmp_path / "dino.pth")
    for encoder, model, ckpt, size in (("vgg19", "random", "vgg.pth", 32), ("dinov2", "vits14-random", "dino.pth", 56)):
        a = samembed.extract("eurosat", data_dir=data, encoder=encoder, model=model, img_size=size,
                             cache_dir=tmp_path / "a", progress=False, workers=0)
        b = samembed.extract("eurosat", data_dir=data, encoder=encoder, checkpoint=tmp_path / ckpt, img_size=size,
                             cache_dir=tmp_path / "b", progress=False, workers=0)
        assert b.group.startswith(encoder) and b.group != a.group  # named by the file's hash
        ga, gb = samembed.open_cache(tmp_path / "a", "eurosat", a.group), samembed.open_cache(tmp_path / "b", "eurosat", b.group)
        assert np.array_equal(ga.read("grid"), gb.read("grid"))
    # DINOv2 at another size: the position embedding is resampled from the file's 4 x 4 grid.
    other = samembed.extract("eurosat", data_dir=data, encoder="dinov2", checkpoint=tmp_path / "dino.pth", img_size=28,
                             cache_dir=tmp_path / "c", progress=False, workers=0)
    assert samembed.open_cache(tmp_path / "c", "eurosat", other.group).group["grid"].shape == (60, 384, 2, 2)


def test_encoder_errors_are_one_clear_line(data, tmp_path, monkeypatch):
    from samembed.encoders import vgg

    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    torch.save({"something": torch.zeros(2)}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        samembed.extract("eurosat", data_dir=data, encoder="vgg19", checkpoint=tmp_path / "junk.pth", img_size=32,
                         cache_dir=tmp_path / "x", progress=False, workers=0)
    with pytest.raises(CheckpointError, match="not a VGG19 checkpoint"):
        samembed.extract("eurosat", data_dir=data, encoder="vgg19", checkpoint=tmp_path / "other.pth", img_size=32,
                         cache_dir=tmp_path / "x", progress=False, workers=0)
    with pytest.raises(UsageError, match="--model for dinov2 is vits14 or vitb14"):
        samembed.create_encoder("dinov2", model="vitg14")
    with pytest.raises(UsageError, match="multiple of 14"):
        samembed.create_encoder("dinov2", model="vits14-random", img_size=64)

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(vgg.IMAGENET_WEIGHTS.__class__, "get_state_dict", offline)
    with pytest.raises(CheckpointError, match=r"cannot download VGG19's ImageNet weights .*--checkpoint FILE"):
        samembed.extract("eurosat", data_dir=data, encoder="vgg19", img_size=32, cache_dir=tmp_path / "y",
                         progress=False, workers=0)
    import timm

    from samembed.encoders import hub

    monkeypatch.setattr(hub, "hub_unreachable", lambda: None)  # the hub answers, the download fails
    monkeypatch.setattr(timm, "create_model", offline)
    with pytest.raises(CheckpointError, match="cannot download DINOv2 vits14 weights .*--checkpoint FILE"):
        samembed.extract("eurosat", data_dir=data, encoder="dinov2", img_size=28, cache_dir=tmp_path / "z",
                         progress=False, workers=0)

    def a_bug(*args, **kwargs):
        raise TypeError("create_model() got an unexpected keyword argument")

    monkeypatch.setattr(timm, "create_model", a_bug)  # not a download failure: it keeps its traceback
    with pytest.raises(TypeError, match="unexpected keyword"):
        samembed.extract("eurosat", data_dir=data, encoder="dinov2", img_size=28, cache_dir=tmp_path / "z",
                         progress=False, workers=0)


@pytest.fixture()
def unreachable_hub(tmp_path, monkeypatch):
    """The Hugging Face hub at a closed port of 127.0.0.1 with an empty local cache; returns the
    list of every connection attempted (socket.create_connection, under urllib and httpx alike)."""
    import socket

    from huggingface_hub import constants

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", endpoint + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    attempts, connect = [], socket.create_connection

    def counted(address, *args, **kwargs):
        attempts.append(address)
        return connect(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", counted)
    return attempts


@pytest.mark.parametrize("encoder, model, size, file", [
    ("dinov2", "vits14", 28, "dinov2_vits14_pretrain.pth"),
    ("dinov3", "vitl16-sat", 32, "dinov3_vitl16_pretrain_sat493m-*.pth")])
def test_offline_dino_weights_ask_the_hub_once_and_fail_in_one_line(data, tmp_path, unreachable_hub, encoder, model,
                                                                    size, file):
    """Before: huggingface_hub tried 12 times (5 retries of 2 files, about 25 log lines over 52-57 s)."""
    from typer.testing import CliRunner

    from samembed.cli import app

    result = CliRunner().invoke(app, ["extract", "eurosat", "--encoder", encoder, "--model", model, "--data-dir",
                                      str(data), "--img-size", str(size), "--cache-dir", str(tmp_path / "c"),
                                      "--device", "cpu", "--workers", "0", "-q"])
    assert result.exit_code == 1
    (line,) = result.output.strip().splitlines()
    assert line.startswith(f"error: cannot download {'DINOv2' if encoder == 'dinov2' else 'DINOv3'} {model} weights: "
                           "the Hugging Face hub (http://127.0.0.1:") and line.endswith(file), line
    assert "cannot be reached" in line and "pass --checkpoint FILE" in line
    assert len(unreachable_hub) == 1  # one quiet request, no retries


def test_dino_weights_in_the_hubs_local_cache_are_used_without_a_request(data, tmp_path, unreachable_hub):
    import timm
    from huggingface_hub import constants
    from safetensors.torch import save_file

    repository = Path(constants.HF_HUB_CACHE) / "models--timm--vit_small_patch14_dinov2.lvd142m"
    snapshot = repository / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (repository / "refs").mkdir()
    (repository / "refs" / "main").write_text("0" * 40)
    torch.manual_seed(1)
    vit = timm.create_model("vit_small_patch14_dinov2", pretrained=False, num_classes=0)
    save_file({k: v.contiguous() for k, v in vit.state_dict().items()}, snapshot / "model.safetensors")
    result = samembed.extract("eurosat", data_dir=data, encoder="dinov2", img_size=28, cache_dir=tmp_path / "c",
                              progress=False, workers=0)
    assert result.encoded == 60 and unreachable_hub == []
    assert samembed.open_cache(tmp_path / "c", "eurosat").signature["encoder"]["weights"] == \
        "timm vit_small_patch14_dinov2.lvd142m"


@pytest.fixture(scope="module")
def four_kinds(data, tmp_path_factory):
    """A runs store with SAM (tiny), VGG19 and DINOv2 linear heads and the compact CNN from
    scratch, on the same splits."""
    tmp = tmp_path_factory.mktemp("four")
    ckpt = samembed.write_tiny_checkpoint(tmp / "sam.pth")
    for encoder, model, size, checkpoint in (("sam", None, 64, ckpt), ("vgg19", "random", 32, None),
                                             ("dinov2", "vits14-random", 28, None)):
        samembed.extract("eurosat", data_dir=data, encoder=encoder, model=model, checkpoint=checkpoint, img_size=size,
                         cache_dir=tmp / "cache", progress=False, workers=0)
    groups = [g.name for g in samembed.list_groups(tmp / "cache")]
    for group in groups:
        samembed.sweep("eurosat", encoder=group, heads=["linear"], splits=[0.3, 0.5], seeds=2, epochs=5,
                       cache_dir=tmp / "cache", runs_dir=tmp / "runs", device="cpu", progress=False)
    scratch = samembed.sweep("eurosat", encoder=groups[0], heads=["cnn"], splits=[0.3, 0.5], seeds=1, epochs=15,
                             cache_dir=tmp / "cache", runs_dir=tmp / "runs", device="cpu", progress=False)
    again = samembed.sweep("eurosat", encoder=groups[1], heads=["cnn"], splits=[0.3, 0.5], seeds=1, epochs=15,
                           cache_dir=tmp / "cache", runs_dir=tmp / "runs", device="cpu", progress=False)
    return tmp, groups, scratch, again


def test_the_from_scratch_baseline_learns_on_the_same_splits(four_kinds):
    tmp, groups, scratch, again = four_kinds
    assert again == []  # the same baseline run, started from another cache group, is found
    assert len(scratch) == 2
    for record in scratch:
        assert record["config"]["feature"] == "images" and record["config"]["uses_encoder"] is False
        assert record["metrics"]["accuracy"] > 0.5  # 10 classes: chance is 0.1
    records = samembed.experiments.records.RunsStore(tmp / "runs").records()
    by_split = {}
    for r in records:
        by_split.setdefault((r["split"]["name"], r["split"]["seed"]), set()).add(r["split"]["indices_hash"])
    assert all(len(hashes) == 1 for hashes in by_split.values())  # every model, the same indices


def test_a_report_puts_every_encoder_and_the_baseline_side_by_side(four_kinds, tmp_path):
    tmp, groups, _, _ = four_kinds
    report = write_report(tmp / "runs", tmp_path)
    summary = pd.read_csv(tmp_path / "summary.csv")
    encoders = set(summary["encoder"])
    assert encoders == set(groups) | {"none (from scratch)"} and len(groups) == 3
    assert {g.split("-")[0] for g in groups} == {"sam", "vgg19", "dinov2"}
    assert len(summary) == 4 * 2 and set(summary["n_seeds"]) == {1, 2}
    assert set(summary.loc[summary["encoder"] == "none (from scratch)", "head"]) == {"cnn"}
    assert "split_sweep_eurosat.png" in {p.name for p in report.files}
    from samembed.report.names import series_labels

    assert len(set(series_labels(summary))) == 4  # four lines in the split-sweep figure
