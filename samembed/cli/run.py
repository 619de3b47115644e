"""``samembed run``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..paths import DEFAULT_CACHE_DIR, DEFAULT_RUNS_DIR
from .app import CACHE_DIR_HELP, app, friendly_errors


@app.command("run")
@friendly_errors
def run_command(
    study: Path = typer.Argument(..., help="Study file (TOML), e.g. experiments/eurosat-study.toml."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="The dataset, if not where the study file says."),
    cache_dir: str = typer.Option(str(DEFAULT_CACHE_DIR), "--cache-dir", help=CACHE_DIR_HELP),
    runs_dir: Path = typer.Option(DEFAULT_RUNS_DIR, "--runs-dir", help="Runs store folder."),
    out: Optional[Path] = typer.Option(None, "--out", help="Report folder (default: the study's, else <runs-dir>/report-<name>)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
):
    """Run a study file end to end: extract what is missing, sweep, report. Everything resumes.

    Example: samembed run experiments/eurosat-study.toml
    """
    from ..study import run_study

    result = run_study(study, data_dir=data_dir, cache_dir=cache_dir, runs_dir=runs_dir, out=out, device=device,
                       progress=not quiet, say=typer.echo)
    typer.echo(f"{result.runs} new runs on {', '.join(result.groups)}; report: {result.report.out / 'report.md'}")
