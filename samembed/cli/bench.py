"""``samembed bench``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from .app import app, friendly_errors, parse_list


@app.command("bench")
@friendly_errors
def bench_command(
    models: str = typer.Option("vit_b", "--models", help="Comma-separated: vit_b, vit_l, vit_h (random weights of that shape)."),
    sizes: str = typer.Option("1024", "--sizes", help="Comma-separated input sizes, e.g. 1024,448,224."),
    images: int = typer.Option(16, "--images", help="Images per measurement."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Batch size of samembed's paths (default 16 CUDA, 2 CPU)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    compile: bool = typer.Option(False, "--compile", help="torch.compile the encoder paths (b), (d), (e) and the extraction (c); first calls are timed apart."),
    compile_mode: Optional[str] = typer.Option(None, "--compile-mode", help="torch.compile mode of (b), (d), (e), implies --compile: default, reduce-overhead (CUDA graphs), max-autotune, max-autotune-no-cudagraphs."),
    attention: str = typer.Option("auto", "--attention", help="Attention kernels of the extraction (c), GLOBAL[,WINDOWED] blocks of auto, sdpa, flex; the WINDOWED part also sets (e)'s windowed blocks."),
    peers: bool = typer.Option(True, "--peers/--no-peers", help="Time (d) segment-anything-fast (when importable) and (e) the FlexAttention path."),
    reference: bool = typer.Option(True, "--reference/--no-reference", help="Time segment_anything's own float32 path too."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="Time this SAM checkpoint instead of --models."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Decoding processes of the whole extraction."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the figures to this JSON file."),
):
    """Time (a) segment_anything's reference path, (b) samembed's encoder with SDPA, (c) the whole
    extraction, (d) segment-anything-fast's encoder (when installed) and (e) samembed's encoder
    with FlexAttention, each with its ratio to (a).

    Example: samembed bench --models vit_b,vit_h --sizes 1024,448,224 --device cuda
    """
    from ..bench import bench, rows_as_dicts

    rows = bench(parse_list(models, str, "--models"), parse_list(sizes, int, "--sizes"), images=images, batch_size=batch_size,
                 device=device, compile=compile_mode or compile, reference=reference, checkpoint=checkpoint,
                 workers=workers, attention=attention, peers=peers, say=typer.echo)
    if json_out is not None:
        json_out.write_text(json.dumps(rows_as_dicts(rows), indent=2))
        typer.echo(f"wrote {json_out}")
