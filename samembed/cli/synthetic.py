"""``samembed synthetic`` and ``samembed tiny-checkpoint``: offline stand-ins for real data and
real weights."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .app import app, friendly_errors


@app.command("synthetic")
@friendly_errors
def synthetic_command(
    out_dir: Path = typer.Argument(..., help="Folder to write (pass it to extract as --data-dir)."),
    layout: str = typer.Option("2750", "--layout", help="2750 or EuroSAT_RGB (EuroSAT's layouts), folder; road or seg-folder for segmentation; eurosat-ms, eurosat-sar or raster-folder (GeoTIFFs); scene (one georeferenced raster with a road mask)."),
    images_per_class: int = typer.Option(8, "--images-per-class", help="Images per class (road layouts: training images)."),
    size: int = typer.Option(64, "--size", help="Image side in pixels."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    difficulty: Optional[str] = typer.Option(None, "--difficulty", help="How far the classes overlap (2750, EuroSAT_RGB, folder): easy (separable: every head scores 100 %), medium (the default: heads, splits and seeds differ), hard."),
):
    """Write a small synthetic dataset in a real layout (for trying samembed offline).

    Example: samembed synthetic data/synthetic && samembed extract eurosat --data-dir data/synthetic ...
    """
    from ..datasets import make_synthetic_dataset, make_synthetic_rasters, make_synthetic_roads, make_synthetic_scene
    from ..errors import UsageError

    if difficulty is not None and layout not in ("2750", "EuroSAT_RGB", "folder"):
        raise UsageError(f"--difficulty applies to the image layouts 2750, EuroSAT_RGB and folder, not {layout}")

    if layout in ("eurosat-ms", "eurosat-sar", "raster-folder"):
        path = make_synthetic_rasters(out_dir, layout, images_per_class=images_per_class, size=size, seed=seed)
    elif layout == "scene":
        path = make_synthetic_scene(out_dir, size=(8 * size, 10 * size), seed=seed, masks=True)
    elif layout in ("road", "seg-folder"):  # images_per_class: training images; a quarter each for val and test
        counts = (images_per_class, max(1, images_per_class // 4), max(1, images_per_class // 4))
        path = make_synthetic_roads(out_dir, layout=layout, counts=counts, size=size, seed=seed)
    else:
        path = make_synthetic_dataset(out_dir, layout=layout, images_per_class=images_per_class, size=size, seed=seed,
                                      difficulty=difficulty or "medium")
    typer.echo(f"wrote a synthetic dataset to {path} (its images are generated: results on it mean nothing)")


@app.command("tiny-checkpoint")
@friendly_errors
def tiny_checkpoint_command(
    out: Path = typer.Argument(..., help="Checkpoint file to write."),
    embed_dim: int = typer.Option(32, "--embed-dim", help="Transformer width."),
    depth: int = typer.Option(2, "--depth", help="Transformer blocks (the last attends globally)."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
):
    """Write a tiny SAM-format checkpoint with random weights (for trying samembed offline).

    Example: samembed tiny-checkpoint tiny_sam.pth && samembed extract ... --checkpoint tiny_sam.pth
    """
    from ..encoders import write_tiny_checkpoint

    heads = max(1, embed_dim // 16)
    write_tiny_checkpoint(out, embed_dim=embed_dim, depth=depth, num_heads=heads, global_attn_indexes=(depth - 1,), seed=seed)
    typer.echo(f"wrote {out} (random weights: its embeddings mean nothing)")
