"""``samembed extract``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..datasets.registry import available_datasets
from ..encoders.base import available_encoders, img_size_help, models_help
from ..paths import DEFAULT_CACHE_DIR
from ..plugins import DEFAULT_ENCODER
from .app import CACHE_DIR_HELP, app, friendly_errors


@app.command("extract")
@friendly_errors
def extract_command(
    dataset: str = typer.Argument(..., help=f"Dataset: {', '.join(available_datasets())}."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Where the dataset is (default ./data/<dataset>)."),
    name: Optional[str] = typer.Option(None, "--name", help="Name this dataset in the cache (its own store; later commands take --dataset NAME), so that several folders of your own sit side by side: letters, digits, '.', '_', '-', not a built-in dataset's name."),
    download: bool = typer.Option(False, "--download/--no-download", help="Download the dataset if it is missing."),
    encoder: str = typer.Option(DEFAULT_ENCODER, "--encoder", help=f"Encoder: {', '.join(available_encoders())}."),
    model: Optional[str] = typer.Option(None, "--model", help=models_help()),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="A local weights file in the encoder's official format (sam: any SAM-format checkpoint, architecture inferred)."),
    img_size: Optional[int] = typer.Option(None, "--img-size", help=img_size_help()),
    grid: Optional[int] = typer.Option(None, "--grid", help="Side of the pooled feature map to store (default 16; 64 keeps SAM's full map at 1024)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Images per batch (default 16 on CUDA, 4 on the CPU)."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Decoding processes (default min(8, CPUs) on CUDA, 1 on the CPU)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    cache_dir: str = typer.Option(str(DEFAULT_CACHE_DIR), "--cache-dir", help=CACHE_DIR_HELP),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Skip images that cannot be decoded (recorded in the cache) instead of stopping."),
    compile: bool = typer.Option(False, "--compile", help="torch.compile the encoder (worth it on a GPU for large datasets)."),
    attention: str = typer.Option("auto", "--attention", help="Attention kernels of encoders that have a choice (sam): GLOBAL[,WINDOWED] blocks, each auto, sdpa or flex (auto: FlexAttention in the global blocks on CUDA where it runs, SDPA otherwise; docs/encoders.md)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Delete this encoder's group of the cache first and start it over."),
    bands: Optional[str] = typer.Option(None, "--bands", help="Rasters: the bands of the composite, names or 1-based numbers (B04,B03,B02; VV/VH for a ratio) or a preset (s2-rgb, s2-false-colour, s2-swir, s1-vv-vh-ratio); for prithvi, one band per HLS band (default B02,B03,B04,B8A,B11,B12); docs/rasters.md."),
    stretch: Optional[str] = typer.Option(None, "--stretch", help="Rasters: to 8 bits with fixed:LOW,HIGH, percentile (2-98 %, computed once and stored), percentile-image, db (SAR) or none."),
    chip_size: Optional[int] = typer.Option(None, "--chip-size", help="scene: chip side in pixels (default 512)."),
    chip_overlap: Optional[int] = typer.Option(None, "--chip-overlap", help="scene: pixels shared by neighbouring chips (default 0)."),
    min_data_share: Optional[float] = typer.Option(None, "--min-data-share", help="Rasters: the share of an image's (a chip's) pixels that must hold data, 0-1 (default: any valid pixel); an image under it, or without data, is stored unusable (ok = false) and left out of training and evaluation (docs/rasters.md)."),
    prompt_features: bool = typer.Option(False, "--prompt-features", help="Store what the encoder's own mask decoder reads to answer prompts (samembed prompt, zero-shot heads): the whole map and, for sam2, its two higher-resolution maps (4 x the cache; docs/prompts.md)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
):
    """Run the frozen encoder once over every image and store the embeddings in the cache.

    Interrupted runs (Ctrl-C, SIGTERM, a lost machine) resume where they stopped when run again.
    Launched by torchrun, every process encodes its own shards on its own GPU (docs/distributed.md):
    torchrun --nproc-per-node 4 -m samembed extract eurosat --cache-dir s3://bucket/cache

    Example: samembed extract eurosat --download --model vit_b --grid 16
    """
    from ..extraction import ExtractionRequest, extract

    request = ExtractionRequest.of(
        dataset, data_dir=data_dir, download=download, encoder=encoder, model=model, checkpoint=checkpoint,
        img_size=img_size, grid=grid, batch_size=batch_size, workers=workers, device=device, cache_dir=cache_dir,
        skip_bad=skip_bad, progress=not quiet, compile=compile, overwrite=overwrite, bands=bands, stretch=stretch,
        prompt_features=prompt_features, attention=attention, min_data_share=min_data_share, name=name,
        chip_size=chip_size, chip_overlap=chip_overlap,  # the scene dataset's own (declared at its registration)
    )
    result = extract(request)
    if result.rank != 0:  # rank 0 speaks for a distributed run
        return
    where = f"{result.store}/{result.group}"
    if result.encoded == 0 and result.skipped == 0:
        typer.echo(f"{where}: already complete ({result.num_images} images)")
        return
    line = f"{where}: encoded {result.encoded} images in {result.seconds:.1f} s ({result.images_per_second:.1f} img/s)"
    if result.world_size > 1:
        line += f" by {result.world_size} processes"
    if result.blank:
        line += f", {result.blank} blank (no data; stored unusable, ok = false)"
    if result.skipped:
        line += f", skipped {result.skipped} unreadable images (their errors are in the group's 'error' array)"
    typer.echo(line)
    for part in result.ranks:
        typer.echo(f"  rank {part['rank']} on {part['host']} ({part['device']}): {part['shards']} shards, "
                   f"{part['encoded']} images in {part['seconds']:.1f} s")
