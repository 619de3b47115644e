"""``write_report``: the runs store in, CSV tables, PNG figures and ``report.md`` out."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from ..version import __version__
from ..atomic import write_whole
from ..errors import SamembedError, UsageError, storage_error, warn
from ..experiments.records import DEFAULT_RUNS_DIR, RunsStore, first_of_each_run, readable_runs
from ..datasets import load_dataset
from ..datasets.masks import read_mask
from .markdown import report_markdown, summary_markdown
from .segmentation import seg_per_image_table, seg_runs_table, seg_summary_markdown, seg_summary_table
from .tables import confusion_table, per_class_table, runs_table, summary_table, summed_confusion

DEFAULT_REPORT_DIR = DEFAULT_RUNS_DIR / "report"


@dataclass
class Report:
    """What :func:`write_report` wrote: ``files`` (paths, in writing order), the ``summary``
    frame (one row per configuration, see docs/report.md) and the number of runs it covers."""

    out: Path
    runs: int
    summary: pd.DataFrame
    files: list[Path] = field(default_factory=list)


def write_report(
    runs_dir: str | Path = DEFAULT_RUNS_DIR, out: str | Path | None = None, *, dataset: str | list[str] | None = None,
    encoder: str | list[str] | None = None, head: str | list[str] | None = None, run: str | None = None,
    note: str | None = None,
) -> Report:
    """Write the report of the runs in ``runs_dir`` (filtered by ``dataset``, ``encoder`` (a cache
    group name or its prefix) and ``head``) to ``out`` (default ``<runs_dir>/report``).
    ``run`` (a run id or its prefix) picks the run of the training-curve figure; by default it is
    the best run with curves of each dataset. ``note`` goes at the top of report.md (by default
    :data:`SYNTHETIC_NOTE` when any run's cache is synthetic: :func:`synthetic_cache`).
    Classification and segmentation runs get their own tables and figures."""
    from . import figures  # matplotlib: loaded only when a report is drawn, not by every command

    store = RunsStore(runs_dir)
    records, duplicates = first_of_each_run(readable_runs(store.records(), store.path))
    if duplicates:
        warn(f"{store.path} holds {duplicates} later record(s) of runs recorded before; the report counts the "
             "first record of each run once")
    if not records:
        state = "is empty" if store.path.exists() else "does not exist"
        raise UsageError(f"{store.path} {state}: train heads first (`samembed train-head` or `samembed sweep`), "
                         "or point --runs-dir at the folder that holds runs.jsonl")
    keep = _selected(records, dataset=dataset, encoder=encoder, head=head)
    records = [r for r in records if r["run_id"] in keep]
    by_id = {r["run_id"]: r for r in records}
    classification = [r for r in records if r.get("task", "classification") == "classification"]
    segmentation = [r for r in records if r.get("task") == "segmentation"]
    out = Path(out) if out is not None else Path(runs_dir) / "report"
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; the report is a folder of files: pass a folder (created if missing)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise storage_error(err, f"creating the report folder {out}") from None
    report = Report(out, len(records), pd.DataFrame())

    def csv(frame: pd.DataFrame, name: str) -> None:
        report.files.append(write_whole(out / name, lambda tmp: frame.to_csv(tmp, index=False)))

    chosen = _pick_run(records, run, by_id)
    sections, tables = [], []
    if classification:
        runs = runs_table(classification)
        summary = report.summary = summary_table(runs, by_id)
        csv(runs, "runs.csv")
        csv(summary, "summary.csv")
        csv(per_class_table(summary, by_id), "per_class.csv")
        csv(confusion_table(runs, by_id), "confusion.csv")
        for name, rows in summary.groupby("dataset", sort=True):
            captions = _classification_figures(figures, out, name, rows, by_id, csv, report)
            captions += _curves_figure(figures, out, chosen.get(name), name, run, report)
            sections.append({"dataset": name, "figures": captions})
        tables.append(("Summary", SUMMARY_TEXT, summary_markdown(summary)))
    if segmentation:
        runs = seg_runs_table(segmentation)
        summary = seg_summary_table(runs)
        per_image = seg_per_image_table(runs, by_id)
        if report.summary.empty:
            report.summary = summary
        csv(runs, "segmentation_runs.csv")
        csv(summary, "segmentation_summary.csv")
        csv(per_image, "segmentation_per_image.csv")
        for name, rows in runs.groupby("dataset", sort=True):
            captions = _segmentation_figures(figures, out, name, rows, per_image, by_id, report)
            captions += _curves_figure(figures, out, chosen.get(name), name, run, report)
            sections.append({"dataset": name, "figures": captions})
        tables.append(("Segmentation summary", SEG_SUMMARY_TEXT, seg_summary_markdown(summary)))

    header = {
        "runs store": str(store.path), "runs": str(len(records)),
        **({"duplicates dropped": f"{duplicates} later record(s) of runs already recorded"} if duplicates else {}),
        "filters": ", ".join(f"{k} = {v}" for k, v in (("dataset", dataset), ("encoder", encoder), ("head", head))
                             if v) or "none",
        "written": datetime.now(timezone.utc).isoformat(timespec="seconds"), "samembed": __version__,
    }
    if note is None and any(synthetic_cache(r) for r in records):
        note = SYNTHETIC_NOTE
    markdown = report_markdown(sections, tables, header, note)
    report.files.append(write_whole(out / "report.md", lambda tmp: tmp.write_text(markdown)))
    return report


SUMMARY_TEXT = ("Accuracy and macro F1 on the evaluated split, in percent: mean ± sample standard deviation over "
                "seeds; in brackets the 95 % Student-t interval of the mean over seeds (two or more seeds; cut to "
                "0-100, which no mean leaves); in parentheses the 95 % bootstrap interval over the evaluated images "
                "(each run's images drawn again with replacement, 1,000 times; a single run has one too). The first "
                "says how much the figure moves with the seed (and split), the second how much with the images "
                "evaluated. The head's batch is the one its runs trained with.")
SYNTHETIC_NOTE = ("Some of these runs were made from generated embeddings or with a SAM checkpoint of no published "
                  "architecture (such as samembed's tiny random-weight checkpoints): their numbers come from "
                  "synthetic data and say nothing about SAM or a real dataset.")


def synthetic_cache(record: dict) -> bool:
    """Whether the run's cache came from :func:`samembed.cache.synthetic.write_embedding_cache`
    (encoder ``fake``) or a SAM checkpoint of no published variant (``custom``: the tiny
    random-weight checkpoints of the demo, quickstart and tests)."""
    encoder = record.get("cache", {}).get("signature", {}).get("encoder", {})
    return encoder.get("encoder") == "fake" or encoder.get("variant") == "custom"
SEG_SUMMARY_TEXT = ("Road class at the original resolution of each evaluated image, in percent, mean ± sample "
                    "standard deviation over seeds. 'All pixels' pools the pixels of every evaluated image (micro); "
                    "'per image, mean' averages each image's own score. The kept epoch is the best on validation.")


def _classification_figures(figures, out: Path, name: str, rows: pd.DataFrame, by_id: dict, csv, report) -> list:
    captions = []  # (caption, file name) of each figure, in report.md order
    for kind, x, stem, what in (("val", "train_fraction", "split_sweep", "against the training fraction"),
                                ("shots", "split_value", "few_shot", "against training images per class")):
        part = rows[rows["split_kind"] == kind]
        if len(part):
            path = figures.plot_split_sweep(part, out / f"{stem}_{name}.png", f"{name}: {what}", x=x)
            report.files.append(path)
            captions.append((f"Accuracy and macro F1 {what}", path.name))
    best = rows.sort_values(["accuracy_mean", "macro_f1_mean"], ascending=False, kind="stable").iloc[0]
    matrix, classes = summed_confusion(best["run_ids"].split(), by_id)
    what = (f"{best['encoder']} · {best['head']} ({best['feature']}), split {best['split']}, "
            f"summed over {best['n_seeds']} seed(s)")
    path = figures.plot_confusion(matrix, classes, out / f"confusion_{name}.png", f"{name}: {what}")
    csv(pd.DataFrame(matrix, index=pd.Index(classes, name="true \\ predicted"), columns=classes).reset_index(),
        f"confusion_{name}.csv")
    report.files.append(path)
    captions.append((f"Confusion matrix of the most accurate configuration: {what}", path.name))
    return captions


def _segmentation_figures(figures, out: Path, name: str, runs: pd.DataFrame, per_image: pd.DataFrame,
                          by_id: dict, report, examples: int = 4) -> list:
    captions = []
    path = figures.plot_segmentation_boxplots(per_image[per_image["dataset"] == name],
                                              out / f"segmentation_boxplots_{name}.png",
                                              f"{name}: per-image metrics at the original resolution")
    report.files.append(path)
    captions.append(("Per-image pixel accuracy, Dice (= road F1) and IoU of each model, every evaluated image "
                     "of every seed (box: quartiles, line: median, triangle: mean)", path.name))
    first = runs.sort_values(["model", "seed"], kind="stable").groupby("model", sort=True).head(1)
    record = by_id[first["run_id"].iloc[0]]
    image_ids = [row["image_id"] for row in record["metrics"]["per_image"]][:examples]
    predictions, prompts = {}, {}
    for _, row in first.iterrows():
        rows = {p["image_id"]: p for p in by_id[row["run_id"]]["metrics"]["per_image"]}
        if not all(i in rows for i in image_ids):
            continue  # evaluated on other images (another split): not comparable side by side
        folder = Path(row["predictions_dir"])
        predictions[row["model"]] = [_read_if_there(read_mask, folder / rows[i]["prediction"]) for i in image_ids]
        if any("prompts" in rows[i] for i in image_ids):  # zero-shot: the prompts it was given
            prompts[row["model"]] = [rows[i].get("prompts", []) for i in image_ids]
    inputs = _example_inputs(record, image_ids)
    if inputs is not None and all(all(p is not None for p in v) for v in predictions.values()):
        images, truths = inputs
        path = figures.plot_segmentation_examples(images, truths,
                                                  {m: [p.astype(float) for p in v] for m, v in predictions.items()},
                                                  [Path(i).name for i in image_ids], out / f"segmentation_examples_{name}.png",
                                                  f"{name}: evaluated images, ground truth and predictions (first seed)",
                                                  prompts=prompts)
        report.files.append(path)
        captions.append(("Examples: image, ground truth and each model's prediction (first seed of each; zero-shot "
                         "models show their prompts: + foreground point, x background point, rectangle box)", path.name))
    return captions


def _example_inputs(record: dict, image_ids: list[str]):
    """([(H, W, 3) images in 0-1], [(H, W) truths]) of ``image_ids`` as the encoder saw them (a
    raster through its composite), or ``None`` if the dataset is no longer where the run found it
    (the example figure is then left out, the rest of the report is not affected)."""
    from ..datasets.composite import Composite
    from ..datasets.inputs import InputReader

    cache = record["cache"]
    try:
        index = load_dataset(cache["dataset"], Path(cache["data_root"]), **cache.get("dataset_options", {}))
        positions = {image_id: k for k, image_id in enumerate(index.image_ids)}
        stored = cache["signature"].get("composite")
        reader = InputReader(index, Composite.from_signature(stored) if stored else None)
        images = [reader(positions[i])[0] / 255 for i in image_ids]
        truths = [index.mask(positions[i]).astype(float) for i in image_ids]
    except (SamembedError, KeyError):
        return None
    return images, truths


def _read_if_there(read, path: Path):
    """``read(path)``, or ``None`` for a file moved, deleted or damaged since the run (the
    example figure is then left out)."""
    try:
        return read(path)
    except SamembedError:
        return None


def _curves_figure(figures, out: Path, record: dict | None, name: str, run: str | None, report) -> list:
    if record is None:
        return []
    c = record["config"]
    what = f"{record['cache']['group']} · {c['head']}, split {c['split']}, seed {c['seed']}, run {record['run_id']}"
    path = figures.plot_training_curves(record, out / f"curves_{record['run_id']}.png", f"{name}: {what}")
    report.files.append(path)
    picked = "the run asked for" if run else "the best run with curves"
    return [(f"Training curves of {picked}: {what}", path.name)]


def _selected(records: list[dict], **filters) -> set[str]:
    """Run ids of the records that match every filter (a comma-separated list or a list of names;
    an encoder also matches by prefix, so sam-vit_b selects every input size)."""
    frame = pd.DataFrame([{"run_id": r["run_id"], "dataset": r["cache"]["dataset"], "encoder": r["cache"]["group"],
                           "head": r["config"]["head"]} for r in records])
    for column, wanted in filters.items():
        if not wanted:
            continue
        names = [w.strip() for w in (wanted.split(",") if isinstance(wanted, str) else wanted) if w.strip()]
        keep = frame[column].isin(names)
        if column == "encoder":
            keep |= frame[column].map(lambda value: any(value.startswith(n) for n in names))
        if not keep.any():
            have = ", ".join(sorted(frame[column].astype(str).unique()))
            raise UsageError(f"no runs match --{column} {','.join(names)}; the runs store has: {have}")
        frame = frame[keep]
    return set(frame["run_id"])


def _pick_run(records: list[dict], run: str | None, by_id: dict[str, dict]) -> dict[str, dict]:
    """The run of each dataset's training-curve figure: ``run`` (id or prefix), or per dataset the
    best run that has curves (accuracy, or micro Dice for segmentation)."""
    if run is not None:
        matches = [r for r in records if r["run_id"].startswith(run)]
        if len(matches) != 1:
            problem = "matches no run" if not matches else f"matches {len(matches)} runs; give more characters"
            raise UsageError(f"--run {run} {problem} (run ids are in runs.csv)")
        record = matches[0]
        if not record.get("curves"):
            raise UsageError(f"run {record['run_id']} ({record['config']['head']}) has no per-epoch curves; "
                             "only torch heads (linear, mlp, sam-conv, sam-vit, unet) record them")
        return {record["cache"]["dataset"]: record}
    chosen: dict[str, dict] = {}

    def score(r: dict) -> tuple:
        m = r["metrics"]
        return (m["micro_dice"], m["mean_dice"]) if r.get("task") == "segmentation" else (m["accuracy"], m["macro_f1"])

    for r in records:  # the first of equals wins, as a stable sort would
        name = r["cache"]["dataset"]
        if r.get("curves") and (name not in chosen or score(r) > score(chosen[name])):
            chosen[name] = r
    return chosen
