"""``write_report``: the runs store in, CSV tables, PNG figures and ``report.md`` out."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from .. import __version__
from ..atomic import write_whole
from ..errors import UsageError
from ..experiments.records import DEFAULT_RUNS_DIR, RunsStore
from .markdown import report_markdown
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
    the most accurate run with curves of each dataset. ``note`` goes at the top of report.md."""
    from . import figures  # matplotlib: loaded only when a report is drawn, not by every command

    store = RunsStore(runs_dir)
    records = store.records()
    if not records:
        state = "is empty" if store.path.exists() else "does not exist"
        raise UsageError(f"{store.path} {state}: train heads first (`samembed train-head` or `samembed sweep`), "
                         "or point --runs-dir at the folder that holds runs.jsonl")
    runs = runs_table(records)
    for column, wanted in (("dataset", dataset), ("encoder", encoder), ("head", head)):
        runs = _filter(runs, column, wanted)
    by_id = {r["run_id"]: r for r in records}
    out = Path(out) if out is not None else Path(runs_dir) / "report"
    out.mkdir(parents=True, exist_ok=True)
    summary = summary_table(runs)
    report = Report(out, len(runs), summary)

    def csv(frame: pd.DataFrame, name: str) -> None:
        report.files.append(write_whole(out / name, lambda tmp: frame.to_csv(tmp, index=False)))

    csv(runs, "runs.csv")
    csv(summary, "summary.csv")
    csv(per_class_table(summary, by_id), "per_class.csv")
    csv(confusion_table(runs, by_id), "confusion.csv")

    sections = []
    chosen = _pick_run(runs, run, by_id)
    for name, rows in summary.groupby("dataset", sort=True):
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

        record = chosen.get(name)
        if record is not None:
            c = record["config"]
            what = (f"{record['cache']['group']} · {c['head']} ({c['feature']}), split {c['split']}, seed {c['seed']}, "
                    f"run {record['run_id']}")
            path = figures.plot_training_curves(record, out / f"curves_{record['run_id']}.png", f"{name}: {what}")
            report.files.append(path)
            picked = "the run asked for" if run else "the most accurate run with curves"
            captions.append((f"Training curves of {picked}: {what}", path.name))
        sections.append({"dataset": name, "figures": captions})

    header = {
        "runs store": str(store.path), "runs": str(len(runs)),
        "filters": ", ".join(f"{k} = {v}" for k, v in (("dataset", dataset), ("encoder", encoder), ("head", head))
                             if v) or "none",
        "written": datetime.now(timezone.utc).isoformat(timespec="seconds"), "samembed": __version__,
    }
    markdown = report_markdown(summary, sections, header, note)
    report.files.append(write_whole(out / "report.md", lambda tmp: tmp.write_text(markdown)))
    return report


def _filter(runs: pd.DataFrame, column: str, wanted) -> pd.DataFrame:
    if not wanted:
        return runs
    names = [w.strip() for w in (wanted.split(",") if isinstance(wanted, str) else wanted) if w.strip()]
    keep = runs[column].isin(names)
    if column == "encoder":  # a group name's prefix (sam-vit_b) selects all its input sizes
        keep |= runs[column].map(lambda value: any(value.startswith(n) for n in names))
    if not keep.any():
        have = ", ".join(sorted(runs[column].astype(str).unique()))
        raise UsageError(f"no runs match --{column} {','.join(names)}; the runs store has: {have}")
    return runs[keep]


def _pick_run(runs: pd.DataFrame, run: str | None, by_id: dict[str, dict]) -> dict[str, dict]:
    """The run of each dataset's training-curve figure: ``run`` (id or prefix), or per dataset the
    most accurate run that has curves."""
    with_curves = runs[runs["run_id"].map(lambda i: bool(by_id[i].get("curves")))]
    if run is not None:
        matches = runs[runs["run_id"].str.startswith(run)]
        if len(matches) != 1:
            problem = "matches no run" if matches.empty else f"matches {len(matches)} runs; give more characters"
            raise UsageError(f"--run {run} {problem} (run ids are in runs.csv)")
        record = by_id[matches["run_id"].iloc[0]]
        if not record.get("curves"):
            raise UsageError(f"run {record['run_id']} ({record['config']['head']}) has no per-epoch curves; "
                             "only torch heads (linear, mlp, sam-conv, sam-vit) record them")
        return {record["cache"]["dataset"]: record}
    chosen = {}
    for name, rows in with_curves.groupby("dataset"):
        best = rows.sort_values(["accuracy", "macro_f1"], ascending=False, kind="stable").iloc[0]
        chosen[name] = by_id[best["run_id"]]
    return chosen


