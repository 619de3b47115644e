"""``samembed report`` and ``samembed demo``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..paths import DEFAULT_RUNS_DIR
from .app import app, friendly_errors


@app.command("report")
@friendly_errors
def report_command(
    runs_dir: Path = typer.Option(DEFAULT_RUNS_DIR, "--runs-dir", help="Runs store folder (holds runs.jsonl)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Report folder (default <runs-dir>/report)."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="Only these datasets (comma-separated)."),
    encoder: Optional[str] = typer.Option(None, "--encoder", help="Only these cache groups, e.g. sam-vit_b@1024 (a prefix such as sam-vit_b matches all sizes)."),
    head: Optional[str] = typer.Option(None, "--head", help="Only these heads (comma-separated)."),
    run: Optional[str] = typer.Option(None, "--run", help="Run id (or prefix) for the training-curve figure (default: the most accurate run with curves)."),
    baseline: Optional[str] = typer.Option(None, "--baseline", help="A head (knn, unet, ...) or an encoder (cache group or prefix): the paired differences become each configuration's difference to it on its split, with a figure."),
):
    """Write CSV tables, PNG figures and report.md from the runs store.

    Example: samembed report --head linear,mlp --baseline linear --out experiments/report
    """
    from ..report import write_report

    report = write_report(runs_dir, out, dataset=dataset, encoder=encoder, head=head, run=run, baseline=baseline)
    tasks = f" ({', '.join(f'{n} {task}' for task, n in report.runs_by_task.items())})" if len(report.runs_by_task) > 1 else ""
    typer.echo(f"{report.runs} runs{tasks} in {report.configurations} configurations; wrote {len(report.files)} files "
               f"to {report.out}:")
    for path in report.files:
        typer.echo(f"  {path.name}")


@app.command("demo")
@friendly_errors
def demo_command(
    out: Path = typer.Option(Path("samembed-demo"), "--out", help="Folder for the demo's data, cache, runs and report."),
):
    """Run the whole pipeline offline on synthetic images with a random-weight encoder.

    Example: samembed demo && open samembed-demo/report/report.md
    """
    from ..demo import NOTE, run_demo

    result = run_demo(out, say=typer.echo)
    typer.echo(f"done in {result.seconds:.0f} s: open {result.report.out / 'report.md'}")
    typer.echo(NOTE)
