"""The segmentation part of the report: its CSV tables, figures and report.md tables."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..datasets import load_dataset
from ..datasets.masks import read_mask
from ..errors import SamembedError
from .comparisons import Configuration, comparisons
from .markdown import differences_markdown
from .output import ReportOutput, Section
from .sections import register_section
from .segmentation import seg_per_image_table, seg_runs_table, seg_summary_markdown, seg_summary_table
from .segmentation_stats import METRICS, record_statistic

SEG_SUMMARY_TEXT = ("Road class at the original resolution of each evaluated image, in percent, mean ± sample "
                    "standard deviation over seeds, and in parentheses the 95 % bootstrap interval over the evaluated "
                    "images (each run's images drawn again with replacement, 1,000 times). 'All pixels' pools the "
                    "pixels of every evaluated image (micro); 'per image, mean' averages each image's own score. The "
                    "kept epoch is the best on validation; s/epoch – for zero-shot models, which train no epochs.")
DIFFERENCE_METRICS = [("micro_dice", "Dice all pixels"), ("micro_iou", "IoU all pixels"),
                      ("mean_dice", "Dice per image, mean")]
CAPTION_MODELS = 6  # box-plot captions list each model's interval and difference up to this many models


def display_model(row, names: dict[str, str]) -> str:
    """A model's name in figures: its cache group's short name · head, or the model as it is."""
    encoder = row["encoder"]
    return f"{names[encoder]} · {row['head']}" if encoder in names else row["model"]


def configurations(summary: pd.DataFrame, by_id: dict[str, dict]) -> list[Configuration]:
    out = []
    for _, row in summary.iterrows():
        runs = {by_id[i]["config"]["seed"]: by_id[i] for i in row["run_ids"].split()}
        out.append(Configuration(row["model"], row["dataset"], row["split"], row["evaluated_on"], row["encoder"],
                                 row["head"], float(row["micro_dice_mean"]), runs))
    return out


@register_section("segmentation", headline=lambda r: (r["metrics"]["micro_dice"], r["metrics"]["mean_dice"]))
def segmentation_section(records: list[dict], by_id: dict[str, dict], output: ReportOutput,
                         curves: dict[str, dict], asked: bool) -> Section:
    runs = seg_runs_table(records)
    summary = seg_summary_table(runs, by_id)
    per_image = seg_per_image_table(runs, by_id)
    output.csv(runs, "segmentation_runs.csv")
    output.csv(summary, "segmentation_summary.csv")
    output.csv(per_image, "segmentation_per_image.csv")
    compared = comparisons(configurations(summary, by_id), record_statistic, METRICS, output.baseline)
    output.csv(compared.table, "segmentation_differences.csv")
    section = Section(summary=summary, comparisons=compared)
    for name, rows in runs.groupby("dataset", sort=True):
        captions = _figures(output, name, rows, summary[summary["dataset"] == name], per_image, by_id, compared)
        section.figures[name] = captions + output.curves(curves.get(name), name, asked)
    section.tables.append(("Segmentation summary", SEG_SUMMARY_TEXT, seg_summary_markdown(summary)))
    text, markdown = differences_markdown(compared, DIFFERENCE_METRICS)
    section.tables.append(("Segmentation paired differences", text, markdown))
    return section


def _figures(output: ReportOutput, name: str, runs: pd.DataFrame, summary: pd.DataFrame, per_image: pd.DataFrame,
             by_id: dict, compared, examples: int = 4) -> list:
    from . import segmentation_figures as figures
    from .figures import plot_difference_forest

    synthetic = name in output.synthetic
    names = {row["model"]: display_model(row, output.names) for _, row in summary.iterrows()}
    captions = []
    png = output.figure(figures.plot_boxplots(per_image[per_image["dataset"] == name],
                                              output.out / f"segmentation_boxplots_{name}.png",
                                              f"{name}: per-image metrics at the original resolution", names=names,
                                              synthetic=synthetic))
    captions.append(("Per-image pixel accuracy, Dice (= road F1) and IoU of each model, every evaluated image of every "
                     "seed (box: quartiles, line: median, triangle: mean)" + _box_caption(summary, compared, names),
                     png))
    table = compared.table[compared.table["dataset"] == name]
    if output.baseline and len(table):
        models = sorted(per_image.loc[per_image["dataset"] == name, "model"].unique())  # the box plots' order
        rows = table.assign(series=[names.get(a, a) for a in table["a"]], style=[models.index(a) for a in table["a"]])
        png = output.figure(plot_difference_forest(
            rows, DIFFERENCE_METRICS, output.out / f"segmentation_differences_{name}.png",
            f"{name}: difference to {output.baseline}", synthetic=synthetic))
        captions.append((f"Each model minus the baseline {output.baseline}, in percentage points, mean over the seeds "
                         "both ran; bars: the paired 95 % bootstrap interval over the evaluated images", png))
    captions += _examples(output, name, runs, by_id, names, synthetic, examples)
    return captions


def _box_caption(summary: pd.DataFrame, compared, names: dict[str, str]) -> str:
    """The caption's numbers: each model's Dice over all pixels with its 95 % image interval, and
    the paired differences of the pairs compared (up to :data:`CAPTION_MODELS` models)."""
    if len(summary) > CAPTION_MODELS:
        return ". Intervals and paired differences: the segmentation tables"
    parts = [f"{names.get(r['model'], r['model'])} {100 * r['micro_dice_mean']:.2f} "
             f"({100 * r['micro_dice_boot95_low']:.2f}–{100 * r['micro_dice_boot95_high']:.2f})"
             for _, r in summary.iterrows()]
    text = ". Dice over all pixels, mean over seeds with its 95 % image interval: " + "; ".join(parts)
    table = compared.table[compared.table["dataset"].isin(summary["dataset"])]
    if len(table):
        diffs = [f"{names.get(r['a'], r['a'])} − {names.get(r['b'], r['b'])} {100 * r['micro_dice_diff']:+.2f} "
                 f"[{100 * r['micro_dice_diff_boot95_low']:+.2f}, {100 * r['micro_dice_diff_boot95_high']:+.2f}]"
                 for _, r in table.head(CAPTION_MODELS * (CAPTION_MODELS - 1) // 2).iterrows()]
        text += ". Paired differences of that Dice (pp, paired 95 % image interval): " + "; ".join(diffs)
    return text


def _examples(output: ReportOutput, name: str, runs: pd.DataFrame, by_id: dict, names: dict, synthetic: bool,
              examples: int) -> list:
    from .segmentation_figures import plot_examples

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
    if inputs is None or not all(all(p is not None for p in v) for v in predictions.values()):
        return []
    images, truths = inputs
    masks = {m: [p.astype(float) for p in v] for m, v in predictions.items()}
    png = output.figure(plot_examples(images, truths, masks, [Path(i).name for i in image_ids],
                                      output.out / f"segmentation_examples_{name}.png",
                                      f"{name}: evaluated images, ground truth and predictions (first seed)",
                                      prompts=prompts, labels=names, synthetic=synthetic))
    return [("Examples: image, ground truth and each model's prediction (first seed of each; zero-shot models show "
             "their prompts: + foreground point, x background point, rectangle box)", png)]


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
