"""``report.md``: the figures and the tables in one Markdown page (GitHub-flavoured: tables).

Every table cell goes through :func:`cell`, so a label with a pipe (``lr=0.001|0.01|0.1``), a star
or an angle bracket reads back as written in any CommonMark renderer with GFM tables."""

from __future__ import annotations

import math
import re

import pandas as pd

# Characters that would end a cell (|), start emphasis, code, HTML, an entity or strikethrough, or
# escape, are backslash-escaped as CommonMark allows for any ASCII punctuation; a closing bracket
# only where a link would follow ("](" or "]["), so intervals such as [+0.99, +9.00] stay as they
# are; an underscore only at a word's edge, where it could start emphasis (vit_b stays as it is).
_SPECIAL = re.compile(r"([\\|*`<>~&])|\](?=[(\[])|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")


def cell(value) -> str:
    """``value`` as the text of one table cell: on one line, Markdown's special characters escaped."""
    text = " ".join(str(value).split())
    return _SPECIAL.sub(lambda m: "\\" + m.group(0), text)


def table(head: list[str], rows: list[list]) -> str:
    """A GFM table of ``head`` and ``rows`` (every cell escaped)."""
    lines = ["| " + " | ".join(cell(h) for h in head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def pct(value, digits: int = 2) -> str:
    """A fraction in percent, ``–`` where there is none."""
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.{digits}f}"


def number(value, fmt: str = "{:.2f}") -> str:
    """A number, ``–`` where there is none (a zero-shot model has no epochs to time)."""
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else fmt.format(value)


def _metric_cell(row, metric: str) -> str:
    text = f"{pct(row[f'{metric}_mean'])} ± {pct(row[f'{metric}_std'])}"
    if not math.isnan(row[f"{metric}_ci95_low"]):
        text += f" [{pct(row[f'{metric}_ci95_low'])}, {pct(row[f'{metric}_ci95_high'])}]"
    if f"{metric}_boot95_low" in row and not math.isnan(row[f"{metric}_boot95_low"]):
        text += f" ({pct(row[f'{metric}_boot95_low'])}–{pct(row[f'{metric}_boot95_high'])})"
    return text


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


def head_label(row) -> str:
    """The head with its settings as trained: ``linear [epochs=30 ... batch=60]``."""
    settings = _settings(row)
    return row["head"] + (f" [{settings}]" if settings else "")


SUMMARY_HEAD = ["dataset", "encoder", "head", "feature", "split", "evaluated on", "seeds",
                "accuracy % mean ± std [seeds 95 %] (images 95 %)",
                "macro F1 % mean ± std [seeds 95 %] (images 95 %)"]


def summary_markdown(summary: pd.DataFrame) -> str:
    """The summary as a Markdown table, metrics in percent: mean ± std [95 % interval over
    seeds] (95 % bootstrap interval over the evaluated images)."""
    ordered = summary.sort_values(["dataset", "encoder", "head", "feature", "split_kind", "split_value"], kind="stable")
    rows = [[row["dataset"], row["encoder"], head_label(row), row["feature"], _split(row), row["evaluated_on"],
             row["n_seeds"], _metric_cell(row, "accuracy"), _metric_cell(row, "macro_f1")]
            for _, row in ordered.iterrows()]
    return table(SUMMARY_HEAD, rows)


def names_markdown(names: dict[str, str]) -> str:
    """The figures' short names beside the cache groups they stand for."""
    return table(["name in the figures", "cache group"], [[short, group] for group, short in sorted(names.items())])


def report_markdown(sections: list[dict], tables: list[tuple[str, str, str]], header: dict[str, str],
                    note: str | None) -> str:
    """The page: ``header`` facts, the optional ``note``, per dataset its figures (``sections``:
    ``{"dataset", "figures": [(caption, file name)]}``), then the ``tables`` (title, text, Markdown)."""
    parts = ["# samembed report", ""]
    if note:
        parts += [f"> **Note.** {note}", ""]
    parts += [f"- {key}: {value}" for key, value in header.items()]
    parts += ["", "Tables: `runs.csv`, `summary.csv`, `per_class.csv`, `confusion.csv`, `differences.csv` "
              "(classification), `segmentation_runs.csv`, `segmentation_summary.csv`, `segmentation_per_image.csv`, "
              "`segmentation_differences.csv` (segmentation), as far as the runs include each task. Every figure is "
              "also written as PDF beside its PNG. Columns are described in samembed's docs/report.md.", ""]
    for section in sections:
        parts += [f"## {section['dataset']}", ""]
        for caption, name in section["figures"]:
            parts += [f"**{caption}.**", "", f"![{_alt(caption)}]({name})", ""]
    for title, text, markdown in tables:
        parts += [f"## {title}", ""] + ([text, ""] if text else []) + [markdown, ""]
    return "\n".join(parts)


def _alt(caption: str) -> str:
    """A caption as an image's alternative text: the first sentence, without brackets."""
    return re.sub(r"[\[\]]", "", caption.split(". ")[0])


MAX_DIFFERENCE_ROWS = 40  # beyond this, report.md shows each split's best configuration against the others
MAX_NOTES = 8


def _difference(row, metric: str) -> str:
    d, lo, hi = (row[f"{metric}_{s}"] for s in ("diff", "diff_boot95_low", "diff_boot95_high"))
    return f"{100 * d:+.2f} [{100 * lo:+.2f}, {100 * hi:+.2f}]"


def _against_the_best(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of each split's best configuration (``a`` holds the better of each pair, so the
    best is ``a`` in every pair it is in)."""
    keys = ["dataset", "split", "evaluated_on"]
    counts = frame.groupby(keys + ["a"], sort=False).size().rename("wins").reset_index()
    best = counts.sort_values("wins", ascending=False, kind="stable").drop_duplicates(keys)
    return frame.merge(best[keys + ["a"]], on=keys + ["a"])


def differences_markdown(comparisons, metrics: list[tuple[str, str]]) -> tuple[str, str]:
    """(text, table) of report.md's paired differences: ``metrics`` are (column prefix, name)."""
    frame = comparisons.table
    shown = frame
    if comparisons.baseline is None and len(frame) > MAX_DIFFERENCE_ROWS:
        shown = _against_the_best(frame)
    head = ["dataset", "split", "A", "B", "seeds", "images per seed"]
    for _, name in metrics:
        head += [f"{name}: A − B, pp [paired 95 %]", f"{name}: p (Holm)"]
    rows = []
    for _, row in shown.iterrows():
        cells = [row["dataset"], row["split"], row["a"], row["b"], row["n_seeds"], row["n_images"]]
        for metric, _ in metrics:
            cells += [_difference(row, metric), _p_text(row[f"{metric}_p_holm"])]
        rows.append(cells)
    which = (f"each configuration minus the baseline {comparisons.baseline}" if comparisons.baseline else
             "A is the configuration with the higher mean of the pair")
    text = [f"Differences A − B in percentage points ({which}), averaged over the seeds both were run with on the "
            "same images, with the paired 95 % bootstrap interval: each seed's evaluated images drawn again with "
            "replacement and scored for A and B on the same draw, 1,000 times. p: a paired t test over those seeds "
            "(from 3 seeds; Nadeau & Bengio's correction where each seed draws its own split), Holm-adjusted over "
            "every pair compared on the dataset; – where there is none. Only configurations evaluated on the same "
            "images (same dataset, split and seed: equal indices_hash in runs.csv) are compared, so configurations "
            "on different splits are not."]
    if len(shown) < len(frame):
        text.append(f"Shown: each split's most accurate configuration against the others ({len(shown)} of "
                    f"{len(frame)} pairs; all of them in the differences CSV).")
    if comparisons.unpairable:
        some = comparisons.unpairable
        text.append(f"{len(some)} configuration(s) have runs recorded without each image's prediction (by a samembed "
                    "that did not keep it yet) and cannot be paired; train them again to compare them: "
                    + "; ".join(some[:MAX_NOTES]) + (" ..." if len(some) > MAX_NOTES else "") + ".")
    if not len(frame):
        text.append("No two configurations were compared on the same images.")
    notes = comparisons.not_compared
    if notes:
        text.append("Not compared: " + "; ".join(notes[:MAX_NOTES]) +
                    (f"; and {len(notes) - MAX_NOTES} more." if len(notes) > MAX_NOTES else "."))
    return " ".join(text), table(head, rows) if rows else ""


def _p_text(p) -> str:
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "–"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"
