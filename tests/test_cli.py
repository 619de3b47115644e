"""The command line: the README quickstart, one-line errors, and help for every command."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
import zarr
from typer.testing import CliRunner

from samembed.cli import app

from markdown_tables import check_report_tables

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_quickstart_from_the_readme(tmp_path, monkeypatch):
    """The README's offline quickstart, command for command."""
    monkeypatch.chdir(tmp_path)
    readme = (ROOT / "README.md").read_text()
    commands = []
    for block in ("quickstart", "quickstart-prompts"):
        text = readme.split(f"<!-- {block} -->")[1].split(f"<!-- /{block} -->")[0]
        commands += [line.strip() for line in text.splitlines() if line.strip().startswith("samembed ")]
    assert len(commands) >= 8
    for command in commands:
        result = invoke(*command.split()[1:])
        assert result.exit_code == 0, (command, result.output)
    store = zarr.open_group("demo/cache/eurosat.zarr", mode="r")
    (group_name, group), = store.groups()
    assert {"neck", "trunk", "grid", "labels", "image_ids", "ok", "done"} <= set(dict(group.arrays()))
    assert group["grid"].shape[0] == 80
    assert (tmp_path / "demo/experiments/report/summary.csv").is_file()
    assert sorted(p.name for p in (tmp_path / "demo/prompts").iterdir()) == [
        "Test_image_image11_overlay.pdf", "Test_image_image11_overlay.png", "image11_prompt0.png", "masks.csv"]
    heads = {json.loads(line)["config"]["head"] for line in (tmp_path / "demo/experiments/runs.jsonl").read_text().splitlines()}
    assert {"sam-box", "sam-3points", "sam-conv", "linear", "knn"} <= heads
    demo_report = (tmp_path / "samembed-demo/report/report.md").read_text()
    assert "synthetic images and a randomly initialised encoder" in demo_report
    assert "![" in demo_report and (tmp_path / "samembed-demo/report/split_sweep_eurosat.png").is_file()
    # The golden check: every table cell of the demo's report.md, parsed as a Markdown renderer parses it,
    # is what the CSV files say (linear's "lr=0.001|0.01|0.1" label split its row and lost its metrics).
    assert check_report_tables(tmp_path / "samembed-demo/report") >= 20 * 9 + 16 * 10  # summary and differences
    differences = pd.read_csv(tmp_path / "samembed-demo/report/differences.csv")
    assert len(differences) == 4 * 4 and set(differences["b"].str.split(" · ").str[1]) == {"knn"}
    assert (tmp_path / "samembed-demo/report/differences_split_sweep_eurosat.pdf").is_file()
    check_report_tables(tmp_path / "demo/experiments/report")
    check_report_tables(tmp_path / "demo/road-report")
    # the quickstart's generated classes are of medium difficulty: heads, splits and seeds differ
    quickstart = pd.read_csv(tmp_path / "demo/experiments/report/runs.csv")
    assert quickstart["accuracy"].nunique() > 2 and quickstart["accuracy"].max() < 1.0


def test_extract_info_export(tmp_path, eurosat_dir, tiny_checkpoint):
    common = ["--data-dir", eurosat_dir, "--checkpoint", tiny_checkpoint, "--img-size", 128, "--cache-dir", tmp_path,
              "--workers", 0, "-q"]
    result = invoke("extract", "eurosat", *common)
    assert result.exit_code == 0, result.output
    assert re.search(r"encoded 30 images in [\d.]+ s \([\d.]+ img/s\)", result.output)
    again = invoke("extract", "eurosat", *common)
    assert again.exit_code == 0 and "already complete (30 images)" in again.output
    info = invoke("info", "--cache-dir", tmp_path)
    assert info.exit_code == 0 and "[complete]" in info.output and "30 images, 10 classes" in info.output
    out = tmp_path / "e.h5"
    exported = invoke("export", "eurosat", "--format", "h5", "--out", out, "--cache-dir", tmp_path)
    assert exported.exit_code == 0 and out.is_file()


@pytest.mark.parametrize(
    "args, expected",
    [
        (["extract", "eurosat", "--data-dir", "{tmp}/none"], "--download"),
        (["extract", "nope"], "unknown dataset 'nope'"),
        (["extract", "eurosat", "--checkpoint", "{tmp}/missing.pth"], "not found"),
        (["extract", "folder"], "--data-dir"),
        (["export", "eurosat", "--cache-dir", "{tmp}"], "samembed extract eurosat"),
        (["export", "eurosat", "--format", "csv"], "unknown export format"),
    ],
)
def test_user_mistakes_end_in_one_line(tmp_path, args, expected):
    result = invoke(*[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0]
    assert "Traceback" not in result.output


def test_corrupt_checkpoint_from_the_cli(tmp_path, eurosat_dir):
    bad = tmp_path / "bad.pth"
    bad.write_text("hello")
    result = invoke("extract", "eurosat", "--data-dir", eurosat_dir, "--checkpoint", bad, "--cache-dir", tmp_path)
    assert result.exit_code == 1 and "not a readable PyTorch checkpoint" in result.output
    assert not (tmp_path / "eurosat.zarr").exists()


def test_info_on_an_empty_folder(tmp_path):
    result = invoke("info", "--cache-dir", tmp_path)
    assert result.exit_code == 0 and "no samembed cache" in result.output


def test_every_command_has_help_with_an_example_and_is_documented():
    docs = (ROOT / "README.md").read_text() + (ROOT / "docs" / "cli.md").read_text()
    names = [c.name for c in app.registered_commands]
    assert {"extract", "info", "export", "synthetic", "tiny-checkpoint"} <= set(names)
    for name in names:
        result = invoke(name, "--help")
        assert result.exit_code == 0 and "Example:" in result.output, name
        assert f"samembed {name}" in docs, f"{name} is not documented"


def test_train_head_and_sweep_from_the_cli(tmp_path):
    from samembed.cache.synthetic import write_embedding_cache

    write_embedding_cache(tmp_path / "cache")
    common = ["--cache-dir", tmp_path / "cache", "--runs-dir", tmp_path / "runs", "--device", "cpu"]
    result = invoke("train-head", "--head", "linear", "--split", "0.2", "--epochs", 3, *common)
    assert result.exit_code == 0, result.output
    assert re.search(r"val accuracy \d\.\d{4}, macro F1 \d\.\d{4}", result.output)
    assert f"recorded in {tmp_path / 'runs' / 'runs.jsonl'}" in result.output
    swept = invoke("sweep", "--heads", "linear,knn", "--splits", "0.2,0.5", "--seeds", 2, "--epochs", 2, "-q", *common)
    assert swept.exit_code == 0, swept.output
    # 2 heads x 2 splits x 2 seeds; none is the train-head run above (that one trained 3 epochs, these 2)
    assert swept.output.strip().splitlines()[-1] == f"8 new runs recorded in {tmp_path / 'runs' / 'runs.jsonl'}"
    again = invoke("sweep", "--heads", "linear,knn", "--splits", "0.2,0.5", "--seeds", 2, "--epochs", 2, "-q", *common)
    assert "0 new runs recorded" in again.output
    bad = invoke("train-head", "--head", "nope", "--split", "0.2", *common)
    assert bad.exit_code == 1 and bad.output.strip().splitlines() == [
        "error: unknown head 'nope'; choose one of: cnn, knn, linear, logreg, mlp, resnet18, retrieval, sam-conv, sam-vit"]
    bad = invoke("sweep", "--splits", "0.2,x", *common)
    assert bad.exit_code == 1 and "--split must be a fraction" in bad.output


def test_version_answers_without_a_command():
    from samembed.version import __version__

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"samembed {__version__}"


def test_help_lists_every_encoders_models_and_input_size_from_their_declarations(tiny_checkpoint):
    """Before: --model left out vgg19's and dinov2's models, --img-size said 1024 (VGG19 and DINO use
    224), --feature said "neck or trunk" (VGG19 trains on gap, DINO on cls or mean)."""
    import samembed
    from samembed.encoders import dinov2, dinov3, prithvi, sam2, sam_checkpoint
    from samembed.plugins import ENCODER_MODELS

    text = " ".join(invoke("extract", "--help").output.split())
    for name, declared in ENCODER_MODELS.items():
        assert f"{name} {', '.join(declared.models)}" in text, name
    assert "224 for vgg19, dinov2, dinov3, prithvi" in text and "1024 for sam, sam2" in text
    for command in ("train-head", "sweep"):
        help_text = " ".join(invoke(command, "--help").output.split())
        assert "a pooled array of the group (neck, trunk, gap, cls, mean" in help_text
        assert "default: the cache's only dataset" in help_text
    # the encoders' own tables agree with their declarations, defaults first
    tables = {"sam": sam_checkpoint.OFFICIAL, "sam2": sam2.OFFICIAL_FILES, "dinov2": dinov2.TIMM_NAMES,
              "dinov3": dinov3.VARIANTS, "prithvi": prithvi.RELEASES}
    for name, table in tables.items():
        assert set(table) == set(ENCODER_MODELS[name].models), name
    assert samembed.create_encoder("vgg19").key == "vgg19-imagenet" and samembed.create_encoder("vgg19").img_size == 224
    assert samembed.create_encoder("vgg19", model="random").key == "vgg19-random"
    for name in ("dinov2", "dinov3", "prithvi"):
        declared = ENCODER_MODELS[name]
        spec = samembed.create_encoder(name, model=f"{declared.default}-random")
        assert spec.img_size == declared.img_size and declared.default.split("-")[0] in spec.key, name
    assert samembed.create_encoder("dinov3").variant == "vits16"
    assert samembed.create_encoder("sam", checkpoint=tiny_checkpoint).img_size == ENCODER_MODELS["sam"].img_size


def test_synthetic_difficulty(tmp_path):
    """The quickstart's generated classes were separable, so all its runs scored 100 %; by default
    they now overlap (medium), and --difficulty easy gives the separable data back."""
    import numpy as np
    from PIL import Image

    from samembed.datasets import make_synthetic_dataset

    for level in ("easy", None):
        args = ["synthetic", tmp_path / (level or "default")] + (["--difficulty", level] if level else [])
        assert invoke(*args).exit_code == 0
    easy = make_synthetic_dataset(tmp_path / "lib", jitter=0.0)
    same = [np.asarray(Image.open(next((root / "2750" / "Forest").glob("Forest_1.jpg"))))
            for root in (tmp_path / "easy", easy, tmp_path / "default")]
    assert np.array_equal(same[0], same[1]) and not np.array_equal(same[0], same[2])
    road = invoke("synthetic", tmp_path / "r", "--layout", "road", "--difficulty", "hard")
    assert road.exit_code == 1 and "--difficulty applies to the image layouts 2750, EuroSAT_RGB and folder" in road.output
    unknown = invoke("synthetic", tmp_path / "u", "--difficulty", "extreme")
    assert unknown.exit_code == 1 and "unknown difficulty 'extreme'; choose one of: easy, medium, hard" in unknown.output
