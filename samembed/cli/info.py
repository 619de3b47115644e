"""``samembed info``."""

from __future__ import annotations

from pathlib import Path

import typer

from ..paths import DEFAULT_CACHE_DIR
from .app import CACHE_DIR_HELP, app, friendly_errors


def describe_cache(cache_dir: str | Path) -> str:
    """A readable summary of every cache group under ``cache_dir``."""
    from ..cache import list_groups

    groups = list_groups(cache_dir)
    if not groups:
        return f"no samembed cache in {cache_dir}; create one with `samembed extract DATASET`"
    lines = []
    for g in groups:
        if g.problem:
            lines.append(f"{g.store_name}/{g.name}  [damaged: {g.problem}; extract it again with --overwrite]")
            continue
        stored, total = g.progress
        sig = g.signature
        state = "complete" if stored == total else f"incomplete: {stored} of {total} images, run extract again to resume"
        mib = g.nbytes_stored() / 2**20
        lines.append(f"{g.store_name}/{g.name}  [{state}]")
        lines.append(f"  dataset {sig['dataset']}: {g.num_images} images, {len(g.class_names)} classes, "
                     f"{int(g.blank().sum())} blank (no data), {len(g.skipped)} skipped (unreadable)")
        enc = sig["encoder"]
        weights = f"sha256 {enc['checkpoint_sha256'][:12]}" if enc.get("checkpoint_sha256") else enc.get("weights", "")
        lines.append(f"  encoder {enc['encoder']} {enc.get('variant', '')}  {weights}  input {enc['img_size']}  "
                     f"grid {sig['grid']}  compute {sig['compute_dtype']}"
                     + (f"  task {sig['task']} (masks {sig['mask_size']}x{sig['mask_size']})" if sig.get("task") else ""))
        arrays = ", ".join(f"{n} {tuple(a.shape)} {a.dtype}" for n, a in sorted(g.arrays.items()))
        lines.append(f"  arrays: {arrays}")
        lines.append("  checksums: crc32c on every chunk (`samembed verify` reads them all)" if g.checksums else
                     "  checksums: none (written before samembed checked chunks: unverifiable; extract again with "
                     "--overwrite to add them)")
        lines.append(f"  {'on disk' if isinstance(g.store, Path) else 'stored'}: {mib:.1f} MiB ({mib * 2**20 / max(1, g.num_images) / 1024:.1f} KiB per image)")
    return "\n".join(lines)


@app.command("info")
@friendly_errors
def info_command(cache_dir: str = typer.Option(str(DEFAULT_CACHE_DIR), "--cache-dir", help=CACHE_DIR_HELP)):
    """List what a cache holds: datasets, encoders, sizes, completeness.

    Example: samembed info --cache-dir cache
    """
    typer.echo(describe_cache(cache_dir))
