"""``samembed prompt``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..paths import DEFAULT_CACHE_DIR
from .app import CACHE_DIR_HELP, app, friendly_errors


@app.command("prompt")
@friendly_errors
def prompt_command(
    dataset: Optional[str] = typer.Option(None, "--dataset", help="Dataset whose cache holds the image embeddings (the whole map: segmentation datasets and scenes); default: the cache's only dataset."),
    image: Optional[str] = typer.Option(None, "--image", help="Image id (its path relative to the dataset, as `samembed info` shows ids); not needed with --map."),
    point: list[str] = typer.Option([], "--point", help="X,Y or X,Y,LABEL (1 foreground, the default; 0 background), repeatable: all points form one prompt (at most 64)."),
    box: Optional[str] = typer.Option(None, "--box", help="X0,Y0,X1,Y1: top-left and bottom-right corners."),
    prompts: Optional[Path] = typer.Option(None, "--prompts", help="A CSV (x,y,label or x0,y0,x1,y1 per row; image and prompt columns optional) or GeoJSON file of many prompts (GeoJSON: WGS 84 longitude, latitude unless a crs member names another CRS; reprojected to the scene's)."),
    map_coords: bool = typer.Option(False, "--map", help="Coordinates are the scene's map coordinates, in the scene's CRS: each prompt goes to the chip that holds it."),
    single: bool = typer.Option(False, "--single", help="One mask per prompt (SAM's first mask token; SAM 2's choice by stability) instead of the best of three."),
    out: Path = typer.Option(Path("prompts"), "--out", help="Folder for the masks (PNG; GeoTIFF and GeoJSON for georeferenced scenes) and masks.csv, a row per mask."),
    encoder: Optional[str] = typer.Option(None, "--encoder", help="Cache group; needed when there are several."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="The SAM or SAM 2 checkpoint the cache was extracted with, if not where extraction found it."),
    cache_dir: str = typer.Option(str(DEFAULT_CACHE_DIR), "--cache-dir", help=CACHE_DIR_HELP),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda (the decoder is light: the CPU answers in milliseconds)."),
    overlay: bool = typer.Option(False, "--overlay", help="Also draw, per image, a sheet of the image (its composite and stretch) with each prompt, its mask outlined and its predicted IoU: <image>_overlay.png and .pdf in --out."),
):
    """Segment with SAM's prompts (points, boxes) from the cached image embeddings: no image encoder.

    SAM caches at the whole map, and SAM 2 caches extracted with --prompt-features (answered by SAM 2's own decoder).
    Prints a line per prompt, or for more than 20 prompts a progress bar and a summary (every mask is listed in
    OUT/masks.csv); map coordinates are said in which CRS they were taken to be.

    Example: samembed prompt --dataset road --image Test/image/image181.bmp --point 240,310 --out prompts/
    """
    import time

    from ..prompting.run import PROGRESS_FROM, iter_prompts

    answers = iter_prompts(dataset, encoder=encoder, image=image, points=point, boxes=[box] if box else [],
                           prompts_file=prompts, in_map=map_coords, multimask=not single, out=out,
                           cache_dir=cache_dir, checkpoint=checkpoint, device=device, progress=True,
                           overlay=overlay)
    for crs in answers.crs:
        typer.echo(f"map coordinates in {crs}")
    each = len(answers) <= PROGRESS_FROM
    t0, pixels = time.perf_counter(), 0
    for result in answers:
        pixels += result.pixels
        if each:
            name = result.answer.prompt.name or "prompt"
            typer.echo(f"{result.image_id} {name}: {result.pixels} pixels, predicted IoU {result.answer.score:.3f}; "
                       f"{', '.join(p.name for p in result.files)}")
    if not each:
        seconds = time.perf_counter() - t0
        typer.echo(f"{len(answers)} prompts on {answers.images} images answered in {seconds:.1f} s "
                   f"({len(answers) / max(seconds, 1e-9):.1f} prompts/s), {pixels} mask pixels; masks in {out}, "
                   f"listed in {out / 'masks.csv'}")
