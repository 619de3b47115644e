"""``samembed train-head`` and ``samembed sweep``. The options they share are declared once
(:class:`~samembed.experiments.request.TrainingRequest` holds them in the library)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..heads import available_heads
from ..paths import DEFAULT_CACHE_DIR, DEFAULT_RUNS_DIR
from .app import CACHE_DIR_HELP, app, friendly_errors, parse_list

MIN_STEPS_HELP = ("Floor on optimizer steps of a torch head: a small training set trains more epochs (default: the "
                  "head kind's, docs/heads.md; 0: none). Given --epochs alone, the epochs are trained exactly.")
FEATURE_HELP = ("Pooled heads: a pooled array of the group (neck, trunk, gap, cls, mean, ...: `samembed info` lists "
                "them); default the group's first.")


def _heads_help() -> str:
    """Every built-in task's heads, read from the registrations (no torch)."""
    from ..plugins import BUILTIN

    return "; ".join(f"{task.capitalize()}: {', '.join(available_heads(task))}" for task in BUILTIN["task"]) + \
        " (docs/heads.md)."


# The options train-head and sweep share, declared once.
DATASET = typer.Option(None, "--dataset", help="Dataset whose cache to train on (its name in the cache: eurosat, road, a "
                       "--name given to extract); default: the cache's only dataset.")
FEATURE = typer.Option(None, "--feature", help=FEATURE_HELP)
EPOCHS = typer.Option(None, "--epochs", help="Epochs of a torch head (default: its kind's, docs/heads.md); trained "
                      "exactly, unless --min-steps is given too.")
LR = typer.Option(None, "--lr", help="Peak learning rate (default: the head kind's).")
BATCH_SIZE = typer.Option(None, "--batch-size", help="Largest batch (default: the head kind's).")
MIN_STEPS = typer.Option(None, "--min-steps", help=MIN_STEPS_HELP)
DEVICE = typer.Option("auto", "--device", help="auto, cpu or cuda.")
CACHE_DIR = typer.Option(str(DEFAULT_CACHE_DIR), "--cache-dir", help=CACHE_DIR_HELP)
RUNS_DIR = typer.Option(DEFAULT_RUNS_DIR, "--runs-dir", help="Runs store folder.")
DATA_DIR = typer.Option(None, "--data-dir", help="Where the standard split files are (--split standard), or a "
                        "segmentation dataset if not where extraction found it.")
DOWNLOAD = typer.Option(False, "--download/--no-download", help="Download the standard split files if missing.")
CHECKPOINT = typer.Option(None, "--checkpoint", help="The checkpoint a head needs (sam-vit's decoder, the zero-shot "
                          "prompts), if not where extraction found it.")


def summary_line(record: dict) -> str:
    """The run's one-line summary, as its task writes it."""
    from ..experiments.base import TASKS
    from ..experiments.records import task_of

    return TASKS.get(task_of(record)).summary(record)


@app.command("train-head")
@friendly_errors
def train_head_command(
    dataset: Optional[str] = DATASET,
    encoder: Optional[str] = typer.Option(None, "--encoder", help="Cache group (e.g. sam-vit_b@1024); needed when there are several."),
    head: str = typer.Option("linear", "--head", help=f"Head. {_heads_help()}"),
    split: Optional[str] = typer.Option(None, "--split", help="Validation fraction, e.g. 0.2 (stratified, seeded), or 'standard' (EuroSAT's train/val/test lists; road's own split, its default)."),
    shots: Optional[int] = typer.Option(None, "--shots", help="Instead of --split: K training images per class, the rest for validation."),
    seed: int = typer.Option(0, "--seed", help="Seed of the split and the head."),
    feature: Optional[str] = FEATURE,
    epochs: Optional[int] = EPOCHS,
    lr: Optional[float] = LR,
    batch_size: Optional[int] = BATCH_SIZE,
    min_steps: Optional[int] = MIN_STEPS,
    device: str = DEVICE,
    cache_dir: str = CACHE_DIR,
    runs_dir: Path = RUNS_DIR,
    data_dir: Optional[Path] = DATA_DIR,
    download: bool = DOWNLOAD,
    checkpoint: Optional[Path] = CHECKPOINT,
):
    """Train one head on cached embeddings and record the run.

    Example: samembed train-head --head linear --split 0.2 --seed 0
    """
    from ..experiments.sweep import train_head

    record = train_head(dataset, encoder=encoder, head=head, split=split, shots=shots, seed=seed, feature=feature,
                        epochs=epochs, lr=lr, batch_size=batch_size, min_steps=min_steps, device=device, cache_dir=cache_dir,
                        runs_dir=runs_dir, data_dir=data_dir, download=download, checkpoint=checkpoint)
    typer.echo(summary_line(record))
    typer.echo(f"run {record['run_id']} recorded in {Path(runs_dir) / 'runs.jsonl'}")


@app.command("sweep")
@friendly_errors
def sweep_command(
    dataset: Optional[str] = DATASET,
    encoder: Optional[str] = typer.Option(None, "--encoder", help="Cache group(s): comma-separated names or prefixes (sam-vit_b@1024 sweeps every composite of it); needed when there are several."),
    heads: str = typer.Option("linear", "--heads", help=f"Comma-separated heads. {_heads_help()}"),
    splits: str = typer.Option("0.2", "--splits", help="Comma-separated validation fractions (or 'standard')."),
    shots: Optional[str] = typer.Option(None, "--shots", help="Instead of --splits: comma-separated shots per class."),
    seeds: int = typer.Option(1, "--seeds", help="Number of seeds (0..n-1)."),
    feature: Optional[str] = FEATURE,
    epochs: Optional[int] = EPOCHS,
    lr: Optional[float] = LR,
    batch_size: Optional[int] = BATCH_SIZE,
    min_steps: Optional[int] = MIN_STEPS,
    device: str = DEVICE,
    cache_dir: str = CACHE_DIR,
    runs_dir: Path = RUNS_DIR,
    data_dir: Optional[Path] = DATA_DIR,
    download: bool = DOWNLOAD,
    checkpoint: Optional[Path] = CHECKPOINT,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
):
    """Train heads x splits x seeds from the cache in one process; finished runs are skipped.

    Example: samembed sweep --splits 0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9 --heads linear,mlp,logreg,knn --seeds 3
    """
    from ..experiments.sweep import sweep

    records = sweep(dataset, encoder=encoder, heads=parse_list(heads, str, "--heads"),
                    splits=parse_list(splits, str, "--splits"), shots=parse_list(shots, int, "--shots") if shots else None,
                    seeds=seeds, feature=feature, epochs=epochs, lr=lr, batch_size=batch_size, min_steps=min_steps,
                    device=device, cache_dir=cache_dir, runs_dir=runs_dir, data_dir=data_dir, download=download,
                    checkpoint=checkpoint, progress=not quiet)
    for record in records:
        typer.echo(summary_line(record))
    typer.echo(f"{len(records)} new runs recorded in {Path(runs_dir) / 'runs.jsonl'}")
