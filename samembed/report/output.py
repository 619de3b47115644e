"""Where a report's sections write: its folder, the files written (in order), the figures' short
names of cache groups, which datasets hold synthetic runs, and the paired-difference baseline."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..atomic import write_whole
from .comparisons import Comparisons


@dataclass
class ReportOutput:
    out: Path
    names: dict[str, str]  # cache group -> its name in figures (report/names.py)
    synthetic: set[str]  # datasets with a run on synthetic data: their figures carry the mark
    baseline: str | None = None
    files: list[Path] = field(default_factory=list)

    def csv(self, frame: pd.DataFrame, name: str) -> None:
        self.files.append(write_whole(self.out / name, lambda tmp: frame.to_csv(tmp, index=False)))

    def figure(self, paths: list[Path]) -> str:
        """Record a figure's files (PNG, then PDF); the PNG's name, for report.md."""
        self.files.extend(paths)
        return paths[0].name

    def curves(self, record: dict | None, dataset: str, asked: bool) -> list[tuple[str, str]]:
        """The training-curve figure of ``record`` (none if ``None``): [(caption, PNG name)]."""
        if record is None:
            return []
        from .figures import plot_training_curves

        c = record["config"]
        group = self.names.get(record["cache"]["group"], record["cache"]["group"])
        what = f"{group} · {c['head']}, split {c['split']}, seed {c['seed']}, run {record['run_id']}"
        name = self.figure(plot_training_curves(record, self.out / f"curves_{record['run_id']}.png",
                                                f"{dataset}: {what}", synthetic=dataset in self.synthetic))
        picked = "the run asked for" if asked else "the best run with curves"
        return [(f"Training curves of {picked}: {what}", name)]


@dataclass
class Section:
    """What a task adds to the report: per dataset its figures ([(caption, PNG name)]), its
    report.md tables ([(title, text, Markdown)]), its summary frame and its paired comparisons."""

    figures: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    tables: list[tuple[str, str, str]] = field(default_factory=list)
    summary: pd.DataFrame = field(default_factory=pd.DataFrame)
    comparisons: Comparisons | None = None
