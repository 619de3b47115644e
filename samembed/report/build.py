"""``write_report``: the runs store in, CSV tables, figures (PNG and PDF) and ``report.md`` out; each
task's part is its section (``classification_section``, ``segmentation_section``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from ..atomic import write_whole
from ..cache.synthetic import synthetic_signature
from ..errors import UsageError, storage_error, warn
from ..experiments.records import DEFAULT_RUNS_DIR, RunsStore, first_of_each_run, readable_runs, task_of
from ..version import __version__
from . import classification_section, segmentation_section  # noqa: F401  (they register their sections)
from .markdown import names_markdown, report_markdown
from .names import display_names
from .output import ReportOutput
from .sections import SECTIONS, task_report


@dataclass
class Report:
    """What :func:`write_report` wrote: ``files`` (paths, in writing order), the ``summary``
    frame (one row per configuration, see docs/report.md; the classification summary when there
    are classification runs, else the segmentation one), the number of runs it covers, and the
    paired ``differences`` (one frame per task, by task name)."""

    out: Path
    runs: int
    summary: pd.DataFrame
    files: list[Path] = field(default_factory=list)
    configurations: int = 0  # of every task
    runs_by_task: dict[str, int] = field(default_factory=dict)
    differences: dict[str, pd.DataFrame] = field(default_factory=dict)


def write_report(
    runs_dir: str | Path = DEFAULT_RUNS_DIR, out: str | Path | None = None, *, dataset: str | list[str] | None = None,
    encoder: str | list[str] | None = None, head: str | list[str] | None = None, run: str | None = None,
    note: str | None = None, baseline: str | None = None,
) -> Report:
    """Write the report of the runs in ``runs_dir`` (filtered by ``dataset``, ``encoder`` (a cache
    group name or its prefix) and ``head``) to ``out`` (default ``<runs_dir>/report``).
    ``run`` (a run id or its prefix) picks the run of the training-curve figure; by default it is
    the best run with curves of each dataset. ``note`` goes at the top of report.md (by default
    :data:`SYNTHETIC_NOTE` when any run's cache is synthetic: :func:`synthetic_cache`).
    ``baseline`` (a head, or a cache group or its prefix) turns the paired differences into each
    configuration's difference to the baseline's on its split, with a figure of them.
    Classification and segmentation runs get their own tables and figures."""
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
    if baseline is not None:
        _check_baseline(records, baseline)
    by_id = {r["run_id"]: r for r in records}
    by_task: dict[str, list[dict]] = {}
    for task in [*SECTIONS, *sorted({task_of(r) for r in records} - set(SECTIONS))]:  # registered ones first
        if any(task_of(r) == task for r in records):
            by_task[task] = [r for r in records if task_of(r) == task]
    out = Path(out) if out is not None else Path(runs_dir) / "report"
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; the report is a folder of files: pass a folder (created if missing)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise storage_error(err, f"creating the report folder {out}") from None
    output = ReportOutput(out, display_names(r["cache"]["group"] for r in records),
                          {r["cache"]["dataset"] for r in records if synthetic_cache(r)}, baseline)
    report = Report(out, len(records), pd.DataFrame(), output.files)
    chosen = _pick_run(records, run, by_id)
    figures: dict[str, list] = {}
    tables = []
    for task, task_records in by_task.items():
        section = task_report(task).write(task_records, by_id, output, chosen, run is not None)
        for name, captions in section.figures.items():
            figures.setdefault(name, []).extend(captions)
        tables += section.tables
        if report.summary.empty:
            report.summary = section.summary
        report.configurations += len(section.summary)
        report.runs_by_task[task] = len(by_task[task])
        if section.comparisons is not None:
            report.differences[task] = section.comparisons.table
    if any(short != group for group, short in output.names.items()):
        tables.append(("Names in the figures", "Figures name cache groups by their model alias, without the "
                       "checkpoint's hash; the tables use the full names.", names_markdown(output.names)))
    header = {
        "runs store": str(store.path), "runs": str(len(records)),
        **({"duplicates dropped": f"{duplicates} later record(s) of runs already recorded"} if duplicates else {}),
        "filters": ", ".join(f"{k} = {v}" for k, v in (("dataset", dataset), ("encoder", encoder), ("head", head))
                             if v) or "none",
        **({"baseline": baseline} if baseline else {}),
        "written": datetime.now(timezone.utc).isoformat(timespec="seconds"), "samembed": __version__,
    }
    if note is None and output.synthetic:
        note = SYNTHETIC_NOTE
    sections = [{"dataset": name, "figures": captions} for name, captions in sorted(figures.items())]
    markdown = report_markdown(sections, tables, header, note)
    output.files.append(write_whole(out / "report.md", lambda tmp: tmp.write_text(markdown)))
    return report


SYNTHETIC_NOTE = ("Some of these runs were made from generated embeddings or with a SAM checkpoint of no published "
                  "architecture (such as samembed's tiny random-weight checkpoints): their numbers come from "
                  "synthetic data and say nothing about SAM or a real dataset.")


def synthetic_cache(record: dict) -> bool:
    """Whether the run's cache came from :func:`samembed.cache.synthetic.write_embedding_cache`
    (encoder ``fake``) or a SAM checkpoint of no published variant (``custom``: the tiny
    random-weight checkpoints of the demo, quickstart and tests): :func:`synthetic_signature`."""
    return synthetic_signature(record.get("cache", {}).get("signature", {}))


def _check_baseline(records: list[dict], baseline: str) -> None:
    """One line if ``baseline`` is no head and no cache group (or prefix of one) of the runs."""
    heads = sorted({r["config"]["head"] for r in records})
    groups = sorted({r["cache"]["group"] for r in records})
    if baseline in heads or any(g.startswith(baseline) for g in groups):
        return
    raise UsageError(f"--baseline {baseline} is no head or encoder of the runs reported; heads: "
                     f"{_few(heads)}; encoders: {_few(groups)}")


def _few(names: list[str], limit: int = 6) -> str:
    return ", ".join(names[:limit]) + (" ..." if len(names) > limit else "")


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
    best run that has curves (by its task's headline metrics: accuracy, micro Dice, ...)."""
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
        return task_report(task_of(r)).headline(r)

    for r in records:  # the first of equals wins, as a stable sort would
        name = r["cache"]["dataset"]
        if r.get("curves") and (name not in chosen or score(r) > score(chosen[name])):
            chosen[name] = r
    return chosen
