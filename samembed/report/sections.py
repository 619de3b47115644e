"""Each task's part of the report, by task: a section writer registered with
:func:`register_section` (classification and segmentation register theirs in their own modules),
and the headline metrics that pick a dataset's best run. A task that registers no section (one
added from outside samembed) still gets one: :func:`generic_section`, a table of its runs' numbers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from .markdown import table
from .output import ReportOutput, Section

SectionWriter = Callable[[list[dict], dict[str, dict], ReportOutput, dict[str, dict], bool], Section]


@dataclass(frozen=True)
class TaskReport:
    write: SectionWriter  # (records, records by id, output, curve runs, asked) -> Section
    headline: Callable[[dict], tuple]  # a record's metrics that rank runs (higher is better)


SECTIONS: dict[str, TaskReport] = {}


def register_section(task: str, headline: Callable[[dict], tuple]) -> Callable[[SectionWriter], SectionWriter]:
    """Register ``write`` as the report section of ``task``."""
    def decorate(write: SectionWriter) -> SectionWriter:
        SECTIONS[task] = TaskReport(write, headline)
        return write

    return decorate


def numbers(record: dict) -> dict[str, float]:
    """The record's numeric metrics."""
    return {k: float(v) for k, v in record["metrics"].items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def task_report(task: str) -> TaskReport:
    """The registered section of ``task``, else the generic one."""
    return SECTIONS.get(task) or TaskReport(generic_section, lambda r: tuple(numbers(r).values())[:1])


def generic_section(records: list[dict], by_id: dict[str, dict], output: ReportOutput,
                    curves: dict[str, dict], asked: bool) -> Section:
    """A task without a section of its own: one row per run (its configuration and every number
    it recorded), as ``<task>_runs.csv`` and a report.md table."""
    task = records[0].get("task", "")
    rows = [{"run_id": r["run_id"], "dataset": r["cache"]["dataset"], "encoder": r["cache"]["group"],
             "head": r["config"]["head"], "split": r["config"]["split"], "seed": r["config"]["seed"], **numbers(r)}
            for r in records]
    runs = pd.DataFrame(rows)
    output.csv(runs, f"{task}_runs.csv")
    shown = runs.drop(columns=["run_id"]).round(4)
    text = f"Every {task} run: its configuration and the numbers it recorded (its task has no report section of its own)."
    return Section(tables=[(f"{task.capitalize()} runs", text, table(list(shown.columns), shown.values.tolist()))],
                   summary=runs)
