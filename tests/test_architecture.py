"""The shape of the code (docs/architecture.md): layers that only import downwards, registries that
take a new head kind or task as one module, files written by the previous release that still
open and resume, and a study file that runs end to end."""

from __future__ import annotations

import ast
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import samembed
from samembed.cache.synthetic import write_embedding_cache

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "samembed"

# Lowest first: a module may import its own layer and the layers below, never one above.
LAYERS = [
    {"errors", "registry", "paths", "hashing", "atomic", "download", "devices", "locks", "version", "plugins", "lazy",
     "splits", "threads", "checks"},
    {"datasets", "encoders"},
    {"cache"},
    {"extraction", "heads", "formats"},
    {"experiments"},
    {"classification", "segmentation", "prompting", "search"},  # search: samembed.search (its own branch), which serve imports
    {"report", "study", "demo", "bench", "serve"},
    {"cli", "__main__"},
]


def _layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else "__init__"
    for number, members in enumerate(LAYERS):
        if top in members:
            return number
    raise AssertionError(f"{module} is in no layer: add it to LAYERS and docs/architecture.md")


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(imported module, names) of every import in ``path``, relative ones resolved."""
    module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    package = package.removesuffix(".__init__")
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            found.append((base, [alias.name for alias in node.names]))
    return found


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        yield ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"), path


def test_the_import_graph_has_no_upward_edges():
    problems = []
    for module, path in _modules():
        for target, names in _imports(path):
            if not target.startswith("samembed"):
                continue
            if target == "samembed" and module != "samembed":
                imported = [n for n in names if not (PACKAGE / f"{n}.py").exists() and not (PACKAGE / n).is_dir()]
                if imported:
                    problems.append(f"{module} imports the package root ({', '.join(imported)})")
                continue
            if module.startswith("samembed.experiments") and target.startswith(("samembed.segmentation",
                                                                                 "samembed.classification")):
                problems.append(f"{module} imports {target}: experiments/ knows no task")
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            if private:
                problems.append(f"{module} imports private names {private} from {target}")
            if module != "samembed" and _layer(target) > _layer(module):
                problems.append(f"{module} (layer {_layer(module)}) imports {target} (layer {_layer(target)})")
    assert not problems, "\n".join(problems)


def test_the_command_line_loads_no_model_library():
    """`samembed --help` and argument errors answer at once: the CLI imports no torch, zarr or
    segment_anything until a command runs (names come from the registries' tables)."""
    import subprocess
    import sys

    code = ("import sys, samembed.cli; heavy = [m for m in ('torch', 'zarr', 'segment_anything', 'sklearn', 'timm') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------- a new kind and task, one file each


@pytest.fixture()
def scratch_registries(monkeypatch):
    """Registrations made by a test are forgotten after it (built-in ones are loaded first, as
    their modules register them only once)."""
    from samembed.experiments.base import TASKS
    from samembed.experiments.kinds import KINDS
    from samembed.heads import heads_of, registry

    for reg in (TASKS, KINDS, heads_of("classification"), heads_of("segmentation")):
        reg.all()
        monkeypatch.setattr(reg, "_entries", dict(reg._entries))
    monkeypatch.setattr(registry, "_REGISTRIES", dict(registry._REGISTRIES))


@pytest.mark.usefixtures("scratch_registries")
def test_a_new_head_kind_is_one_registration(embedding_cache, tmp_path):
    """A kind that trains nothing (a majority-class "head"): registered from outside the package,
    it runs in a sweep beside the trained heads, and its record has no curves and no best epoch."""
    from samembed.experiments.kinds import HeadKind, Outcome, register_kind
    from samembed.heads import register_head

    class Majority(HeadKind):
        name, task, input = "majority-test", "classification", "none"

        def fit(self, experiment, plans):
            for plan in plans:
                data = experiment.run_data(experiment.split(plan.split, plan.seed), plan.seed)
                label = np.bincount(experiment.labels[data.train]).argmax()
                yield plan, Outcome(np.full(len(data.evaluate), label), 0.0, info={"label": int(label)})

        def selection(self, outcome, evaluated_on):
            return "none: the most frequent training class"

    register_kind(Majority())
    register_head("majority-test", kind="majority-test", summary="the most frequent training class")(lambda: None)
    records = samembed.sweep("eurosat", heads=["majority-test", "knn"], splits=[0.5], seeds=2,
                             cache_dir=embedding_cache, runs_dir=tmp_path, progress=False)
    majority = [r for r in records if r["config"]["head"] == "majority-test"]
    assert len(majority) == 2 and all(r["curves"] == {} and "best_epoch" not in r["metrics"] for r in majority)
    assert majority[0]["config"]["feature"] == "none" and majority[0]["metrics"]["accuracy"] == pytest.approx(0.2)
    report = samembed.write_report(tmp_path)
    assert set(report.summary["head"]) == {"majority-test", "knn"}


@pytest.mark.usefixtures("scratch_registries")
def test_a_new_task_is_one_registration(tmp_path):
    """A cache group whose task is 'toy' is run by the experiment registered for 'toy'."""
    from samembed.experiments.base import Experiment, register_task
    from samembed.experiments.kinds import HeadKind, Outcome, register_kind
    from samembed.heads import register_head

    @register_task
    class ToyExperiment(Experiment):
        task = "toy"
        split_kinds = ("val",)

        def score(self, plan, data, outcome, run_id):
            return {"mean_prediction": float(np.mean(outcome.predictions))}, {"toy": True}

    class Zero(HeadKind):
        name, task, input = "zero-test", "toy", "pooled"

        def fit(self, experiment, plans):
            for plan in plans:
                data = experiment.run_data(experiment.split(plan.split, plan.seed), plan.seed)
                yield plan, Outcome(np.zeros(len(data.evaluate)), 0.0)

    register_kind(Zero())
    register_head("zero", kind="zero-test", summary="zeros", task="toy")(lambda: None)
    group = write_embedding_cache(tmp_path / "cache")
    group.attrs["signature"] = {**group.attrs["signature"], "task": "toy"}
    (record,) = samembed.sweep("eurosat", heads=["zero"], splits=[0.5], cache_dir=tmp_path / "cache",
                               runs_dir=tmp_path / "runs", progress=False)
    assert record["task"] == "toy" and record["toy"] is True and record["metrics"]["mean_prediction"] == 0.0
    with pytest.raises(samembed.SamembedError, match="toy takes --split F, not 'shots=2'"):
        samembed.sweep("eurosat", heads=["zero"], shots=[2], cache_dir=tmp_path / "cache", runs_dir=tmp_path / "runs",
                       progress=False)
    # the CLI's line and the report's section come from the task, not from code that knows it
    from typer.testing import CliRunner

    from samembed.cli import app

    trained = CliRunner().invoke(app, ["train-head", "--head", "zero", "--split", "0.5", "--seed", "1", "--cache-dir",
                                       str(tmp_path / "cache"), "--runs-dir", str(tmp_path / "runs")])
    assert trained.exit_code == 0, trained.output
    assert "zero on neck, split val=0.5, seed 1: val mean_prediction 0.0000" in trained.output
    report = samembed.write_report(tmp_path / "runs")
    assert report.runs_by_task == {"toy": 2} and (tmp_path / "runs" / "report" / "toy_runs.csv").exists()
    markdown = (tmp_path / "runs" / "report" / "report.md").read_text()
    assert "## Toy runs" in markdown or "Toy runs" in markdown
    assert set(pd.read_csv(tmp_path / "runs" / "report" / "toy_runs.csv")["seed"]) == {0, 1}


# ------------------------------------------------------------- files of the previous release

RELEASE = ROOT / "tests" / "fixtures" / "release-0.1.0"


@pytest.fixture()
def release(tmp_path):
    """A copy of the caches, runs store and report tables written by samembed 0.1.0
    (tests/fixtures/make_release_fixtures.py)."""
    shutil.copytree(RELEASE, tmp_path / "release")
    return tmp_path / "release"


def test_a_cache_and_runs_store_of_the_previous_release_open_and_resume_with_the_same_run_ids(release):
    cache, runs, data = release / "cache", release / "runs", release / "data"
    groups = samembed.list_groups(cache)
    assert {g.dataset for g in groups} == {"eurosat", "road"} and all(g.complete and not g.problem for g in groups)
    eurosat = samembed.open_cache(cache, "eurosat")
    assert eurosat.progress == (20, 20) and eurosat.skipped == [] and len(eurosat.extraction_runs) == 1
    common = dict(cache_dir=cache, runs_dir=runs, progress=False, device="cpu", epochs=2)
    # The release trained linear at a fixed lr of 1e-3; linear now chooses its lr on a held-out part
    # of the training set unless --lr is given: --lr 1e-3 is the release's training and finds its runs.
    assert samembed.sweep("eurosat", heads=["linear"], lr=1e-3, splits=[0.5], seeds=2, **common) == []
    assert samembed.sweep("eurosat", heads=["knn", "logreg", "sam-conv"], splits=[0.5], seeds=2, **common) == []
    assert samembed.sweep("road", heads=["sam-conv", "sam-vit", "unet"], splits=["standard"], data_dir=data / "road",
                          checkpoint=release / "tiny_sam.pth", **common) == []
    new = samembed.sweep("eurosat", heads=["knn"], splits=[0.5], seeds=3, **common)
    assert [r["config"]["seed"] for r in new] == [2]  # resumes: only the seed it had not run
    changed = samembed.sweep("eurosat", heads=["linear"], splits=[0.5], seeds=1, **common)
    assert len(changed) == 1 and changed[0]["config"]["settings"]["lr_grid"]  # other training, other run id


# Columns the report gained after release 0.1.0 (issue 16): the bootstrap interval over the
# evaluated images and the batch the runs trained with; (issue 24) the segmentation summary's image
# interval of every metric. Every column the release wrote is still written with the same values,
# except the seed intervals, now cut to a metric's range [0, 1].
SEG_METRICS = [f"{p}_{m}" for p in ("micro", "mean") for m in ("pixel_accuracy", "dice", "iou", "precision", "recall",
                                                                "f1")]
ADDED_COLUMNS = {"summary.csv": ["accuracy_boot95_low", "accuracy_boot95_high", "macro_f1_boot95_low",
                                 "macro_f1_boot95_high", "batch_size"],
                 "segmentation_summary.csv": [f"{m}_boot95_{s}" for m in SEG_METRICS for s in ("low", "high")]}
# Files the report gained (issue 24): the paired differences of each task. The release's
# classification records hold no per-image predictions, so none of its classification runs is
# paired; its segmentation records hold per-image pixel counts, so they are.
ADDED_FILES = {"differences.csv", "segmentation_differences.csv"}


def test_the_report_of_the_previous_releases_runs_is_unchanged(release, tmp_path):
    report = samembed.write_report(release / "runs", tmp_path / "report")
    written = sorted(p.name for p in report.files if p.suffix == ".csv" and p.name not in ADDED_FILES)
    assert written == sorted(p.name for p in (release / "report").glob("*.csv"))
    assert report.differences["classification"].empty and len(report.differences["segmentation"]) == 3
    for name in written:
        now, then = pd.read_csv(tmp_path / "report" / name), pd.read_csv(release / "report" / name)
        assert list(now.columns) == list(then.columns) + ADDED_COLUMNS.get(name, [])
        for column in then.columns:
            if "_ci95_" in column:
                then[column] = then[column].clip(0.0, 1.0)
        pd.testing.assert_frame_equal(now[list(then.columns)], then)
    summary = pd.read_csv(tmp_path / "report" / "summary.csv")
    assert (summary["accuracy_boot95_low"] <= summary["accuracy_mean"]).all()
    assert (summary["accuracy_mean"] <= summary["accuracy_boot95_high"]).all()
    assert summary["batch_size"].isna().all()  # release 0.1.0's records do not say which batch was used


# ------------------------------------------------------------------------------- a study file


STUDY = """
name = "tiny-study"
dataset = "eurosat"
data_dir = "{data}"

[[encoders]]
encoder = "sam"
checkpoint = "{ckpt}"
img_size = 64
workers = 0

[[encoders]]
encoder = "sam"
checkpoint = "{ckpt}"
img_size = 128
workers = 0
heads = ["knn"]

[sweep]
heads = ["linear", "knn", "logreg"]
baselines = ["cnn"]
splits = [0.5, 0.3]
seeds = 2
epochs = 2
"""


def test_a_study_file_runs_end_to_end_and_matches_the_same_runs_made_command_by_command(eurosat_dir, tiny_checkpoint,
                                                                                       tmp_path):
    path = tmp_path / "tiny-study.toml"
    path.write_text(STUDY.format(data=eurosat_dir, ckpt=tiny_checkpoint))
    study = samembed.run_study(path, cache_dir=tmp_path / "c1", runs_dir=tmp_path / "r1", device="cpu", progress=False)
    assert len(study.groups) == 2 and study.runs == 2 * 2 * 3 + 2 * 2 + 2 * 2  # heads on group 1, knn on 2, cnn once
    again = samembed.run_study(path, cache_dir=tmp_path / "c1", runs_dir=tmp_path / "r1", device="cpu", progress=False)
    assert again.runs == 0 and set(again.extracted.values()) == {0}

    common = dict(cache_dir=tmp_path / "c2", runs_dir=tmp_path / "r2", progress=False, device="cpu")
    for size in (64, 128):
        samembed.extract("eurosat", data_dir=eurosat_dir, checkpoint=tiny_checkpoint, img_size=size, workers=0,
                         cache_dir=tmp_path / "c2", progress=False)
    sweep = dict(splits=[0.5, 0.3], seeds=2, epochs=2, data_dir=eurosat_dir, **common)
    samembed.sweep("eurosat", encoder=study.groups[0], heads=["linear", "knn", "logreg"], **sweep)
    samembed.sweep("eurosat", encoder=study.groups[1], heads=["knn"], **sweep)
    samembed.sweep("eurosat", encoder=study.groups[0], heads=["cnn"], **sweep)
    by_hand = samembed.write_report(tmp_path / "r2", tmp_path / "by-hand")
    timing = [c for c in study.report.summary.columns if c.startswith("seconds")]
    pd.testing.assert_frame_equal(study.report.summary.drop(columns=timing), by_hand.summary.drop(columns=timing))


def test_study_file_mistakes_are_one_line(tmp_path):
    path = tmp_path / "s.toml"
    for text, message in (("dataset = 'eurosat'", "lacks 'encoders'"),
                          ("dataset = 'eurosat'\nencoders = []\n[sweep]", "at least one"),
                          ("dataset = 'eurosat'\n[[encoders]]\nmodle = 'vit_b'\n[sweep]", r"unknown key\(s\) modle"),
                          ("dataset = ", "not valid TOML")):
        path.write_text(text)
        with pytest.raises(samembed.SamembedError, match=message) as err:
            samembed.run_study(path)
        assert "\n" not in str(err.value)
    with pytest.raises(samembed.SamembedError, match="no study file"):
        samembed.run_study(tmp_path / "missing.toml")


def test_the_checked_in_studies_are_valid():
    from samembed.study import load_study

    for path in sorted((ROOT / "experiments").glob("*.toml")):
        study = load_study(path)
        assert study["encoders"] and study["sweep"]["heads"], path


# ------------------------------------------------------------- encoders and tasks are named only where they register

GENERIC = ["prompting", "extraction", "experiments", "report", "cli"]


def _registration_modules() -> set[str]:
    from samembed.plugins import BUILTIN

    modules = {module for table in BUILTIN.values() for module in table.values()}
    # the report sections of the built-in tasks register themselves (report/sections.py)
    return modules | {"samembed.report.classification_section", "samembed.report.segmentation_section"}


def test_generic_modules_name_no_encoder_and_no_task():
    """A string constant equal to a registered encoder or task name in a generic module is a
    branch on it: generic code reaches encoders and tasks through their hooks and registries."""
    from samembed.plugins import BUILTIN

    names = set(BUILTIN["encoder"]) | set(BUILTIN["task"])
    registering = _registration_modules()
    found = []
    for package in GENERIC:
        for path in sorted((PACKAGE / package).rglob("*.py")):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            if module in registering:
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names:
                    found.append(f"{module}:{node.lineno} names '{node.value}'")
    assert not found, found


def test_plugins_lists_exactly_what_the_modules_register():
    """samembed/plugins.py is the table the registries import from: every name it lists is
    registered by the module it names, and nothing else registers a built-in name."""
    import importlib

    from samembed.datasets.registry import DATASETS
    from samembed.encoders.base import ENCODERS
    from samembed.experiments.base import TASKS
    from samembed.experiments.kinds import KINDS
    from samembed.heads import heads_of
    from samembed.plugins import BUILTIN

    registries = {"dataset": DATASETS, "encoder": ENCODERS, "task": TASKS, "head kind": KINDS,
                  "head/classification": heads_of("classification"), "head/segmentation": heads_of("segmentation")}
    assert set(registries) == set(BUILTIN)
    for table, entries in BUILTIN.items():
        for module in set(entries.values()):
            importlib.import_module(module)
        registered = set(registries[table]._entries)
        assert registered == set(entries), (table, registered ^ set(entries))


@pytest.fixture()
def toy_encoder(monkeypatch):
    """An encoder registered from outside the package, with a prompt decoder of its own: its map
    is the image's grey level pooled to 4 x 4 cells, and its decoder says 'inside' where the
    embedding's first channel is above one half."""
    import torch
    from torch import nn

    from samembed.encoders.base import ENCODERS, EncoderSpec, register_encoder
    from samembed.encoders.geometry import Geometry
    from samembed.encoders.prompt_decoder import PromptDecoder

    ENCODERS.all()
    monkeypatch.setattr(ENCODERS, "_entries", dict(ENCODERS._entries))

    class ToyNet(nn.Module):
        def forward(self, images, valid_hw, data=None):
            grey = images.float().mean(1, keepdim=True) / 255  # (B, 1, 64, 64)
            grid = nn.functional.avg_pool2d(grey, 16).repeat(1, 8, 1, 1)  # (B, 8, 4, 4)
            return {"neck": grid.mean((2, 3))}, grid

    class ToyDecoder(PromptDecoder):
        embed_dim = 8

        def __call__(self, embedding, maps, points, boxes, multimask):
            count = len(points[0]) if points is not None else len(boxes)
            k = 3 if multimask else 1
            logits = nn.functional.interpolate(embedding[:, :1] - 0.5, scale_factor=4)  # (1, 1, 16, 16)
            return logits.expand(count, k, -1, -1), torch.ones(count, k)

    class ToySpec(EncoderSpec):
        name, pooled_dims, map_channels = "toy-test", {"neck": 8}, 8
        geometry = Geometry(64, 16)
        key = "toy-test"

        def signature(self):
            return {"encoder": self.name, "img_size": 64}

        def prompt_maps(self):
            return {}

        def prompt_decoder(self, device):
            return ToyDecoder()

        def build(self, device, prompt_maps=False):
            return ToyNet().to(device).eval()

    register_encoder("toy-test")(lambda model, checkpoint, img_size: ToySpec())
    return ToySpec


def test_a_new_encoder_that_answers_prompts_is_one_registration(toy_encoder, eurosat_dir, tmp_path):
    """Registered from outside the package: it extracts through the generic pipeline, and
    `samembed prompt` answers with its own decoder (no name of it in prompting/)."""
    result = samembed.extract("eurosat", data_dir=eurosat_dir, encoder="toy-test", cache_dir=tmp_path / "c",
                              workers=0, progress=False, prompt_features=True)
    group = samembed.open_cache(tmp_path / "c", "eurosat")
    assert result.encoded == 30 and group.name == "toy-test@64" and group.attrs["answers_prompts"] is True
    grid = group.read("grid").astype(np.float32)
    image = str(group.read("image_ids")[3])
    (result,) = samembed.prompt("eurosat", image=image, points=["10,10"], cache_dir=tmp_path / "c")
    expected = np.kron(grid[3, 0] - 0.5, np.ones((4, 4), np.float32))  # the toy decoder's logits (4G x 4G)
    assert result.answer.low_res_logits.shape == (3, 16, 16) and result.answer.mask.shape == (64, 64)
    assert all(np.array_equal(logits, expected) for logits in result.answer.low_res_logits)


def _as_test_study(name: str, tmp_path, checkpoint, **replace) -> Path:
    """The checked-in study ``name`` with the tiny checkpoint at 64 px for vit_b and the given
    top-level keys replaced (the files stay as users run them)."""
    import tomllib

    text = (ROOT / "experiments" / name).read_text()
    tomllib.loads(text)  # the file as checked in is valid TOML
    text = text.replace('model = "vit_b"', f'checkpoint = "{checkpoint}"\nimg_size = 64')
    for key, value in replace.items():
        text = re.sub(rf"(?m)^{key} = .*$", f"{key} = {value}", text)
    text = re.sub(r'(?m)^out = .*$', f'out = "{tmp_path / "report"}"', text)
    path = tmp_path / name
    path.write_text(text)
    return path


def test_the_sentinel2_composite_study_runs_end_to_end(tmp_path, tiny_checkpoint):
    """Every extraction option a study needs (bands, stretch) reaches the extraction: two composites,
    two cache groups, the same splits and seeds on each."""
    from samembed.datasets import make_synthetic_rasters

    data = make_synthetic_rasters(tmp_path / "ms", "eurosat-ms", images_per_class=3, size=32)
    path = _as_test_study("sentinel2-study.toml", tmp_path, tiny_checkpoint, seeds=1)
    study = samembed.run_study(path, data_dir=data, cache_dir=tmp_path / "c", runs_dir=tmp_path / "r", device="cpu",
                               progress=False)
    assert [g.split("+")[1] for g in study.groups] == ["s2-rgb.fixed0_3000", "s2-false-colour.p2-98"]
    assert study.runs == 3 * 3 + 2 * 3  # three heads x three splits on the first, two heads on the second
    assert (tmp_path / "report" / "report.md").exists()


def test_the_scene_study_runs_end_to_end_with_chips_and_a_minimum_data_share(tmp_path, tiny_checkpoint):
    from samembed.datasets import make_synthetic_scene

    data = make_synthetic_scene(tmp_path / "scene", size=(96, 160), bands=4, masks=True)
    # min_data_share 0.7: the chips at column 0 hold data in 32 of their 48 columns (the strip of nodata)
    path = _as_test_study("scene-study.toml", tmp_path, tiny_checkpoint, chip_size=48, chip_overlap=16, seeds=1,
                          min_data_share=0.7)
    study = samembed.run_study(path, data_dir=data, cache_dir=tmp_path / "c", runs_dir=tmp_path / "r", device="cpu",
                               progress=False)
    group = samembed.open_cache(tmp_path / "c", "scene")
    assert group.signature["min_data_share"] == 0.7 and group.attrs["dataset_options"]["chip_size"] == 48
    assert group.num_images == 3 * 5 and study.runs == 1  # chips at rows 0, 32, 48 x columns 0, 32, 64, 96, 112
    assert np.flatnonzero(group.blank()).tolist() == [0, 5, 10]  # the chips of the nodata edge are left out
