"""The report: CSVs equal the run records, the confidence interval, figures, filters and errors,
and the offline demo."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from samembed.cache.synthetic import write_embedding_cache
from samembed.cli import app
from samembed.errors import UsageError
from samembed.experiments.records import RunsStore
from samembed.experiments.sweep import sweep
from samembed.report import confidence_interval, write_report

from markdown_tables import check_report_tables, parse_tables

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    """A runs store from real sweeps over two cache groups: linear and knn on two validation
    fractions x 3 seeds for one encoder, linear for the other, and knn few-shot runs."""
    root = tmp_path_factory.mktemp("report")
    cache = root / "cache"
    write_embedding_cache(cache, noise=1.5, name="enc-a@64")
    write_embedding_cache(cache, noise=1.5, name="enc-b@64", seed=1)
    runs = root / "experiments"
    common = dict(cache_dir=cache, runs_dir=runs, progress=False, device="cpu", epochs=5)
    sweep("eurosat", encoder="enc-a@64", heads=["linear", "knn"], splits=[0.2, 0.5], seeds=3, **common)
    sweep("eurosat", encoder="enc-b@64", heads=["linear"], splits=[0.2, 0.5], seeds=3, **common)
    sweep("eurosat", encoder="enc-a@64", heads=["knn"], shots=[2, 5], seeds=2, **common)
    return runs


@pytest.fixture(scope="module")
def report(runs_dir, tmp_path_factory):
    return write_report(runs_dir, tmp_path_factory.mktemp("out"))


def test_confidence_interval_on_a_hand_checked_example():
    # mean 0.9, sample std 0.1, n 3: half width = t(0.975, 2) * 0.1 / sqrt(3) = 4.302653 * 0.0577350 = 0.248414
    # The upper end, 1.148, is past any accuracy: the interval is cut to [0, 1].
    low, high = confidence_interval([0.8, 0.9, 1.0])
    assert low == pytest.approx(0.9 - 0.248414, abs=1e-6) and high == 1.0
    low, high = confidence_interval([0.8, 0.9, 1.0], bounds=(-math.inf, math.inf))
    assert low == pytest.approx(0.9 - 0.248414, abs=1e-6) and high == pytest.approx(0.9 + 0.248414, abs=1e-6)
    assert confidence_interval([0.7, 0.7]) == (0.7, 0.7)
    assert all(math.isnan(v) for v in confidence_interval([0.5]))


def test_seed_intervals_stay_within_0_and_100_percent():
    """The quickstart showed 55.00 ± 7.07 [-8.53, 118.53] for two seeds at 0.5 and 0.6."""
    low, high = confidence_interval([0.5, 0.6])
    assert (low, high) == (0.0, 1.0)  # t(0.975, 1) = 12.7: wider than the range, so the range
    low, high = confidence_interval([0.02, 0.05, 0.03])
    assert low == 0.0 and 0.03 < high < 0.08


def test_bootstrap_interval_over_the_evaluated_images():
    """Resampling the images of each run: a hand-checkable case, one run, and several runs."""
    from samembed.report.tables import bootstrap_interval

    perfect = [[5, 0], [0, 5]]
    assert bootstrap_interval([perfect]) == {"accuracy": (1.0, 1.0), "macro_f1": (1.0, 1.0)}  # nothing to vary
    one = [[40, 10], [20, 30]]  # accuracy 0.7 on 100 images: binomial se 0.046, 95 % about 0.61-0.79
    boot = bootstrap_interval([one])
    low, high = boot["accuracy"]
    assert 0.60 <= low <= 0.63 and 0.77 <= high <= 0.80
    assert boot == bootstrap_interval([one])  # fixed seed: the same report every time
    f1_low, f1_high = boot["macro_f1"]
    truth_f1 = np.mean([2 * 40 / (2 * 40 + 10 + 20), 2 * 30 / (2 * 30 + 20 + 10)])
    assert f1_low < truth_f1 < f1_high
    many = bootstrap_interval([one, one, one, one])  # the mean of 4 runs of 100 images: about half as wide
    assert (many["accuracy"][1] - many["accuracy"][0]) < 0.6 * (high - low)
    big = [[400, 100], [200, 300]]  # ten times the images: about a third as wide
    b_low, b_high = bootstrap_interval([big])["accuracy"]
    assert b_low < 0.7 < b_high and (b_high - b_low) < 0.4 * (high - low)


def test_runs_csv_equals_the_records(report, runs_dir):
    records = {r["run_id"]: r for r in RunsStore(runs_dir).records()}
    runs = pd.read_csv(report.out / "runs.csv", dtype={"run_id": str})
    assert len(runs) == len(records) == 3 * 2 * 2 + 3 * 2 + 2 * 2
    for _, row in runs.iterrows():
        record = records[row["run_id"]]
        assert row["accuracy"] == record["metrics"]["accuracy"]
        assert row["macro_f1"] == record["metrics"]["macro_f1"]
        assert (row["head"], row["seed"], row["split"]) == (record["config"]["head"], record["config"]["seed"],
                                                           record["config"]["split"])
        assert row["encoder"] == record["cache"]["group"] and row["indices_hash"] == record["split"]["indices_hash"]
        assert row["n_train"] == record["split"]["n_train"] and row["n_val"] == record["split"]["n_val"]
        assert row["img_size"] == 64


def test_summary_csv_aggregates_seeds(report, runs_dir):
    records = RunsStore(runs_dir).records()
    summary = pd.read_csv(report.out / "summary.csv", keep_default_na=False, na_values=[""])
    assert len(summary) == 2 * 2 + 2 + 2  # (linear, knn) x 2 splits for enc-a, linear x 2 for enc-b, 2 shots
    row = summary[(summary["encoder"] == "enc-b@64") & (summary["head"] == "linear") & (summary["split"] == "val=0.5")]
    assert len(row) == 1
    row = row.iloc[0]
    acc = np.array([r["metrics"]["accuracy"] for r in records if r["cache"]["group"] == "enc-b@64"
                    and r["config"]["split"] == "val=0.5"])
    assert row["n_seeds"] == 3 == len(acc)
    assert row["accuracy_mean"] == pytest.approx(acc.mean(), abs=1e-12)
    assert row["accuracy_std"] == pytest.approx(acc.std(ddof=1), abs=1e-12)
    low, high = confidence_interval(acc)
    assert (row["accuracy_ci95_low"], row["accuracy_ci95_high"]) == pytest.approx((low, high), abs=1e-12)
    assert row["train_fraction"] == pytest.approx(0.5) and row["evaluated_on"] == "val"
    from samembed.report.tables import bootstrap_interval

    chosen = [r for r in records if r["cache"]["group"] == "enc-b@64" and r["config"]["split"] == "val=0.5"]
    boot = bootstrap_interval([r["metrics"]["confusion_matrix"] for r in chosen])
    assert (row["accuracy_boot95_low"], row["accuracy_boot95_high"]) == pytest.approx(boot["accuracy"], abs=1e-12)
    assert row["accuracy_boot95_low"] <= row["accuracy_mean"] <= row["accuracy_boot95_high"]
    assert float(row["batch_size"]) == chosen[0]["training"]["batch_size"] == 16  # not the settings' 256
    markdown = (report.out / "report.md").read_text()
    table = parse_tables(markdown)[0]  # as a Markdown renderer reads it (the pipes split linear's row before)
    cells = next(r for r in table["rows"] if r[1] == "enc-b@64" and r[2].startswith("linear") and "(val=0.5)" in r[4])
    assert cells[2] == "linear [epochs=5 lr=0.001|0.01|0.1 (chosen) batch=16]" and cells[4] == "train 50 % (val=0.5)"
    assert f"({100 * row['accuracy_boot95_low']:.2f}–{100 * row['accuracy_boot95_high']:.2f})" in cells[7]
    assert "numbers come from synthetic data" in markdown  # generated embeddings (encoder "fake")
    shots = summary[summary["split_kind"] == "shots"]
    assert sorted(shots["split_value"]) == [2.0, 5.0] and set(shots["n_seeds"]) == {2}


def test_per_class_and_confusion_csvs_equal_the_records(report, runs_dir):
    records = {r["run_id"]: r for r in RunsStore(runs_dir).records()}
    summary = pd.read_csv(report.out / "summary.csv")
    per_class = pd.read_csv(report.out / "per_class.csv")
    assert len(per_class) == len(summary) * 5
    first = summary.iloc[0]
    ids = first["run_ids"].split()
    rows = per_class[(per_class["encoder"] == first["encoder"]) & (per_class["head"] == first["head"])
                     & (per_class["split"] == first["split"])]
    for _, row in rows.iterrows():
        f1 = [records[i]["metrics"]["per_class"][row["class"]]["f1"] for i in ids]
        assert row["f1_mean"] == pytest.approx(np.mean(f1), abs=1e-12)
    confusion = pd.read_csv(report.out / "confusion.csv", dtype={"run_id": str})
    assert len(confusion) == len(records) * 25
    for run_id, cells in confusion.groupby("run_id"):
        classes = list(records[run_id]["metrics"]["per_class"])
        matrix = np.zeros((5, 5), dtype=int)
        for _, cell in cells.iterrows():
            matrix[classes.index(cell["true_class"]), classes.index(cell["predicted_class"])] = cell["count"]
        assert matrix.tolist() == records[run_id]["metrics"]["confusion_matrix"]


def test_every_table_cell_of_report_md_reads_back_as_the_csv_files_say(report):
    """Parsed with a CommonMark parser (GFM tables), as a reader's renderer does: no row split by a
    label's pipe, every number the CSV's."""
    assert check_report_tables(report.out) > 100
    tables = parse_tables((report.out / "report.md").read_text())
    assert all(len(row) == len(t["head"]) for t in tables for row in t["rows"])


def test_paired_differences_of_configurations_on_the_same_images(report, runs_dir):
    differences = pd.read_csv(report.out / "differences.csv", keep_default_na=False, na_values=[""])
    # on each of val=0.2 and val=0.5, three configurations (enc-a linear and knn, enc-b linear): 3 pairs each;
    # the few-shot runs (2 shots, 5 shots) have one configuration each
    assert len(differences) == 6 and set(differences["split"]) == {"val=0.2", "val=0.5"}
    assert (differences["accuracy_diff"] >= 0).all()  # A is the more accurate of each pair
    assert (differences["n_seeds"] == 3).all() and set(differences["test"]) == {"paired t, Nadeau-Bengio corrected"}
    records = {r["run_id"]: r for r in RunsStore(runs_dir).records()}
    summary = pd.read_csv(report.out / "summary.csv")
    row = differences[(differences["split"] == "val=0.5") & differences["a"].str.startswith("enc-a@64 · linear")
                      & differences["b"].str.startswith("enc-a@64 · knn")]
    if len(row):
        row = row.iloc[0]
        means = {h: summary[(summary["encoder"] == "enc-a@64") & (summary["head"] == h)
                            & (summary["split"] == "val=0.5")]["accuracy_mean"].iloc[0] for h in ("linear", "knn")}
        assert row["accuracy_diff"] == pytest.approx(means["linear"] - means["knn"], abs=1e-12)
        assert row["accuracy_diff_boot95_low"] <= row["accuracy_diff"] <= row["accuracy_diff_boot95_high"]
    assert all("predictions" in r["metrics"] for r in records.values())
    p, holm = differences["accuracy_p"], differences["accuracy_p_holm"]
    assert (holm >= p - 1e-12).all() and (holm <= 1).all()


def test_a_baseline_gives_each_configurations_difference_to_it_and_a_figure(runs_dir, tmp_path):
    report = write_report(runs_dir, tmp_path, baseline="knn")
    differences = pd.read_csv(tmp_path / "differences.csv")
    assert set(differences["b"].str.split(" · ").str[1]) == {"knn"}
    assert set(differences["a"]) == {"enc-a@64 · linear", "enc-b@64 · linear"} and len(differences) == 4
    names = {p.name for p in report.files}
    assert {"differences_split_sweep_eurosat.png", "differences_split_sweep_eurosat.pdf"} <= names
    markdown = (tmp_path / "report.md").read_text()
    assert "each configuration minus the baseline knn" in markdown and "- baseline: knn" in markdown
    check_report_tables(tmp_path)
    by_encoder = write_report(runs_dir, tmp_path / "enc", baseline="enc-b")
    assert set(by_encoder.differences["classification"]["a"]) == {"enc-a@64 · linear"}  # linear against linear
    with pytest.raises(UsageError, match="--baseline unet is no head or encoder of the runs reported; heads: knn, "
                                         "linear; encoders: enc-a@64, enc-b@64"):
        write_report(runs_dir, tmp_path / "x", baseline="unet")


def test_records_of_an_earlier_samembed_are_reported_but_not_paired(runs_dir, tmp_path):
    import json

    (tmp_path / "runs").mkdir()
    lines = []
    for line in (runs_dir / "runs.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record["cache"]["group"] == "enc-b@64":
            del record["metrics"]["predictions"]
        lines.append(json.dumps(record))
    (tmp_path / "runs" / "runs.jsonl").write_text("\n".join(lines) + "\n")
    report = write_report(tmp_path / "runs", tmp_path / "out")
    differences = report.differences["classification"]
    assert len(differences) == 2 and not differences["b"].str.startswith("enc-b").any()
    assert "have runs recorded without each image's prediction" in (tmp_path / "out" / "report.md").read_text()


def test_figures_are_valid_png_and_report_md_shows_them(report):
    names = {p.name for p in report.files}
    assert {"split_sweep_eurosat.png", "few_shot_eurosat.png", "confusion_eurosat.png", "report.md"} <= names
    pngs = [p for p in report.files if p.suffix == ".png"]
    assert any(p.name.startswith("curves_") for p in pngs)
    for path in pngs:
        assert path.read_bytes()[:8] == PNG_MAGIC
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            assert image.size[0] > 400 and image.size[1] > 300
    markdown = (report.out / "report.md").read_text()
    for path in pngs:
        assert f"]({path.name})" in markdown
        assert path.with_suffix(".pdf").read_bytes()[:5] == b"%PDF-"  # vector, for papers
    assert "enc-b@64" in markdown and "| linear" in markdown
    assert not list(report.out.glob(".*.tmp"))


def test_filters_and_the_chosen_run(runs_dir, tmp_path):
    only = write_report(runs_dir, tmp_path / "a", head="linear", encoder="enc-b")
    assert set(only.summary["head"]) == {"linear"} and set(only.summary["encoder"]) == {"enc-b@64"}
    assert not (tmp_path / "a" / "few_shot_eurosat.png").exists()
    record = next(r for r in RunsStore(runs_dir).records() if r["config"]["head"] == "linear")
    chosen = write_report(runs_dir, tmp_path / "b", run=record["run_id"][:10])
    assert (tmp_path / "b" / f"curves_{record['run_id']}.png").is_file()
    assert [p.name for p in chosen.files if p.name.startswith("curves_")] == [f"curves_{record['run_id']}.{suffix}"
                                                                             for suffix in ("png", "pdf")]


@pytest.mark.parametrize("kwargs, match", [
    ({"head": "sam-vit"}, r"no runs match --head sam-vit; the runs store has: knn, linear"),
    ({"dataset": "road"}, r"no runs match --dataset road"),
    ({"run": "zzzz"}, r"--run zzzz matches no run"),
])
def test_bad_filters_are_one_clear_line(runs_dir, tmp_path, kwargs, match):
    with pytest.raises(UsageError, match=match):
        write_report(runs_dir, tmp_path, **kwargs)


def test_a_run_without_curves_cannot_be_plotted(runs_dir, tmp_path):
    knn = next(r for r in RunsStore(runs_dir).records() if r["config"]["head"] == "knn")
    with pytest.raises(UsageError, match="has no per-epoch curves"):
        write_report(runs_dir, tmp_path, run=knn["run_id"])


def test_missing_or_empty_runs_store_is_one_line(tmp_path):
    result = CliRunner().invoke(app, ["report", "--runs-dir", str(tmp_path / "nowhere")])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"error: {tmp_path / 'nowhere' / 'runs.jsonl'} does not exist: train heads first (`samembed train-head` or "
        "`samembed sweep`), or point --runs-dir at the folder that holds runs.jsonl"]
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "runs.jsonl").write_text("")
    with pytest.raises(UsageError, match="is empty: train heads first"):
        write_report(tmp_path / "empty")
    assert not (tmp_path / "nowhere").exists() and not (tmp_path / "empty" / "report").exists()


def test_report_command_lists_what_it_wrote(runs_dir, tmp_path):
    result = CliRunner().invoke(app, ["report", "--runs-dir", str(runs_dir), "--out", str(tmp_path / "r"),
                                      "--head", "knn"])
    assert result.exit_code == 0, result.output
    knn = [r for r in RunsStore(runs_dir).records() if r["config"]["head"] == "knn"]
    lines = result.output.splitlines()
    configurations = len({(r["config"]["feature"], r["config"]["split"]) for r in knn})
    assert lines[0] == f"{len(knn)} runs in {configurations} configurations; wrote {len(lines) - 1} files to {tmp_path / 'r'}:"
    assert sorted(line.strip() for line in lines[1:]) == sorted(p.name for p in (tmp_path / "r").iterdir())
