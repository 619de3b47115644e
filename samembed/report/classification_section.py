"""The classification part of the report: its CSV tables, figures and report.md tables."""

from __future__ import annotations

import pandas as pd

from .classification_stats import METRICS, record_statistic
from .comparisons import Configuration, comparisons
from .markdown import differences_markdown, summary_markdown
from .names import series_labels
from .output import ReportOutput, Section
from .sections import register_section
from .tables import confusion_table, per_class_table, runs_table, summary_table, summed_confusion

SUMMARY_TEXT = ("Accuracy and macro F1 on the evaluated split, in percent: mean ± sample standard deviation over "
                "seeds; in brackets the 95 % Student-t interval of the mean over seeds (two or more seeds; cut to "
                "0-100, which no mean leaves); in parentheses the 95 % bootstrap interval over the evaluated images "
                "(each run's images drawn again with replacement, 1,000 times; a single run has one too; macro F1 of "
                "a resample averages the classes present in its truth). The first says how much the figure moves "
                "with the seed (and split), the second how much with the images evaluated. The head's batch is the "
                "one its runs trained with.")
DIFFERENCE_METRICS = [("accuracy", "accuracy"), ("macro_f1", "macro F1")]


def configurations(summary: pd.DataFrame, by_id: dict[str, dict], labels: pd.Series) -> list[Configuration]:
    """The summary's rows as configurations to compare, by their ``labels`` in tables."""
    out = []
    for (_, row), label in zip(summary.iterrows(), labels):
        runs = {by_id[i]["config"]["seed"]: by_id[i] for i in row["run_ids"].split()}
        out.append(Configuration(label, row["dataset"], row["split"], row["evaluated_on"], row["encoder"],
                                 row["head"], float(row["accuracy_mean"]), runs))
    return out


@register_section("classification", headline=lambda r: (r["metrics"]["accuracy"], r["metrics"]["macro_f1"]))
def classification_section(records: list[dict], by_id: dict[str, dict], output: ReportOutput,
                           curves: dict[str, dict], asked: bool) -> Section:
    runs = runs_table(records)
    summary = summary_table(runs, by_id)
    output.csv(runs, "runs.csv")
    output.csv(summary, "summary.csv")
    output.csv(per_class_table(summary, by_id), "per_class.csv")
    output.csv(confusion_table(runs, by_id), "confusion.csv")
    labels = series_labels(summary)  # full cache group names: the tables' names of configurations
    compared = comparisons(configurations(summary, by_id, labels), record_statistic, METRICS, output.baseline)
    output.csv(compared.table, "differences.csv")
    section = Section(summary=summary, comparisons=compared)
    for name, rows in summary.groupby("dataset", sort=True):
        captions = _figures(output, name, rows, by_id, compared.table, labels.loc[rows.index])
        section.figures[name] = captions + output.curves(curves.get(name), name, asked)
    section.tables.append(("Summary", SUMMARY_TEXT, summary_markdown(summary)))
    text, markdown = differences_markdown(compared, DIFFERENCE_METRICS)
    section.tables.append(("Paired differences", text, markdown))
    return section


def _figures(output: ReportOutput, name: str, rows: pd.DataFrame, by_id: dict, differences: pd.DataFrame,
             full: pd.Series) -> list:
    from . import figures

    captions = []  # (caption, PNG name) of each figure, in report.md order
    synthetic = name in output.synthetic
    labels = series_labels(rows, output.names)
    for kind, x, stem, what in (("val", "train_fraction", "split_sweep", "against the training fraction"),
                                ("shots", "split_value", "few_shot", "against training images per class")):
        part = rows[rows["split_kind"] == kind]
        if not len(part):
            continue
        png = output.figure(figures.plot_split_sweep(part, output.out / f"{stem}_{name}.png", f"{name}: {what}",
                                                     x=x, names=output.names, synthetic=synthetic))
        spread = figures.spread_text(part["n_seeds"])
        captions.append((f"Accuracy and macro F1 {what}: each point the {spread}; points of different "
                         "configurations moved slightly sideways so that equal values stay visible", png))
        companion = _baseline_rows(part, full.loc[part.index], labels.loc[part.index], differences, x)
        if output.baseline and len(companion):
            png = output.figure(figures.plot_difference_sweep(
                companion, output.out / f"differences_{stem}_{name}.png", f"{name}: difference to {output.baseline}",
                output.baseline, x=x, order=sorted(labels.loc[part.index].unique()), synthetic=synthetic))
            captions.append((f"Each configuration minus the baseline {output.baseline} {what}, in percentage points, "
                             "mean over the seeds both ran; bars: the paired 95 % bootstrap interval over the "
                             "evaluated images (table: Paired differences)", png))
    best = rows.sort_values(["accuracy_mean", "macro_f1_mean"], ascending=False, kind="stable").iloc[0]
    matrix, classes = summed_confusion(best["run_ids"].split(), by_id)
    encoder = output.names.get(best["encoder"], best["encoder"])
    what = (f"{encoder} · {best['head']} ({best['feature']}), split {best['split']}, "
            f"summed over {best['n_seeds']} seed(s)")
    png = output.figure(figures.plot_confusion(matrix, classes, output.out / f"confusion_{name}.png",
                                               f"{name}: {what}", synthetic=synthetic))
    output.csv(pd.DataFrame(matrix, index=pd.Index(classes, name="true \\ predicted"), columns=classes).reset_index(),
               f"confusion_{name}.csv")
    captions.append((f"Confusion matrix of the most accurate configuration: {what}", png))
    return captions


def _baseline_rows(part: pd.DataFrame, full: pd.Series, labels: pd.Series, differences: pd.DataFrame,
                   x: str) -> pd.DataFrame:
    """The paired differences of ``part``'s configurations (``full``: their labels in the table),
    with their figure label (``series``) and ``x``, for the baseline's companion figure."""
    if not len(differences):
        return differences
    keys = pd.DataFrame({"a": full.to_numpy(), "split": part["split"].to_numpy(), "dataset": part["dataset"].to_numpy(),
                         "series": labels.to_numpy(), x: part[x].to_numpy()})
    return differences.merge(keys, on=["dataset", "split", "a"])
