"""``report.md``: the figures and the summary table in one Markdown page."""

from __future__ import annotations

import math
import re

import pandas as pd


def _pct(value) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.2f}"


def _metric_cell(row, metric: str) -> str:
    cell = f"{_pct(row[f'{metric}_mean'])} ± {_pct(row[f'{metric}_std'])}"
    if not math.isnan(row[f"{metric}_ci95_low"]):
        cell += f" [{_pct(row[f'{metric}_ci95_low'])}, {_pct(row[f'{metric}_ci95_high'])}]"
    if f"{metric}_boot95_low" in row and not math.isnan(row[f"{metric}_boot95_low"]):
        cell += f" ({_pct(row[f'{metric}_boot95_low'])}–{_pct(row[f'{metric}_boot95_high'])})"
    return cell


def _settings(row) -> str:
    """The settings label with the batch the runs actually trained with."""
    label = row["settings"]
    batch = row.get("batch_size", "")
    if label and isinstance(batch, str) and batch:
        label = re.sub(r"batch=\d+", f"batch={batch}", label)
    return label


def _split(row) -> str:
    """``val=0.2`` as the split sweep's axis reads it: the training fraction first."""
    if row["split_kind"] == "val" and not math.isnan(row["train_fraction"]):
        return f"train {100 * row['train_fraction']:.0f} % ({row['split']})"
    return row["split"]


def summary_markdown(summary: pd.DataFrame) -> str:
    """The summary as a Markdown table, metrics in percent: mean ± std [95 % interval over
    seeds] (95 % bootstrap interval over the evaluated images)."""
    head = ["dataset", "encoder", "head", "feature", "split", "evaluated on", "seeds",
            "accuracy % mean ± std [seeds 95 %] (images 95 %)", "macro F1 % mean ± std [seeds 95 %] (images 95 %)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    ordered = summary.sort_values(["dataset", "encoder", "head", "feature", "split_kind", "split_value"], kind="stable")
    for _, row in ordered.iterrows():
        settings = _settings(row)
        head_name = row["head"] + (f" [{settings}]" if settings else "")
        cells = [row["dataset"], row["encoder"], head_name, row["feature"], _split(row), row["evaluated_on"],
                 str(row["n_seeds"]), _metric_cell(row, "accuracy"), _metric_cell(row, "macro_f1")]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def report_markdown(sections: list[dict], tables: list[tuple[str, str, str]], header: dict[str, str],
                    note: str | None) -> str:
    """The page: ``header`` facts, the optional ``note``, per dataset its figures (``sections``:
    ``{"dataset", "figures": [(caption, file name)]}``), then the ``tables`` (title, text, Markdown)."""
    parts = ["# samembed report", ""]
    if note:
        parts += [f"> **Note.** {note}", ""]
    parts += [f"- {key}: {value}" for key, value in header.items()]
    parts += ["", "Tables: `runs.csv`, `summary.csv`, `per_class.csv`, `confusion.csv` (classification), "
              "`segmentation_runs.csv`, `segmentation_summary.csv`, `segmentation_per_image.csv` (segmentation), "
              "as far as the runs include each task. Columns are described in samembed's docs/report.md.", ""]
    for section in sections:
        parts += [f"## {section['dataset']}", ""]
        for caption, name in section["figures"]:
            parts += [f"**{caption}.**", "", f"![{caption}]({name})", ""]
    for title, text, table in tables:
        parts += [f"## {title}", "", text, "", table, ""]
    return "\n".join(parts)
