"""The shape of the code (docs/architecture.md): layers that only import downwards, registries that
take a new head kind or task as one module, files written by the previous release that still
open and resume, and a study file that runs end to end."""

from __future__ import annotations

import ast
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
     "splits", "threads"},
    {"datasets", "encoders"},
    {"cache"},
    {"extraction", "heads"},
    {"experiments"},
    {"classification", "segmentation", "prompting"},
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
        name, task, input, trains = "majority-test", "classification", "none", False

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
        name, task, input, trains = "zero-test", "toy", "pooled", False

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
