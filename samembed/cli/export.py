"""``samembed export``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import UsageError
from ..paths import DEFAULT_CACHE_DIR
from .app import CACHE_DIR_HELP, app, friendly_errors


@app.command("export")
@friendly_errors
def export_command(
    dataset: Optional[str] = typer.Argument(None, help="Dataset whose cache to export (default: the cache's only dataset)."),
    format: str = typer.Option("h5", "--format", help="Output format; h5 (HDF5) for now."),
    encoder: Optional[str] = typer.Option(None, "--encoder", help="Cache group (e.g. sam-vit_b@1024); needed when there are several."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output file (default <cache-dir>/<dataset>-<group>.h5; for a cache on object storage, in the current folder)."),
    cache_dir: str = typer.Option(str(DEFAULT_CACHE_DIR), "--cache-dir", help=CACHE_DIR_HELP),
):
    """Write a cache group's arrays and attributes to another format.

    Example: samembed export eurosat --format h5 --out eurosat.h5
    """
    if format != "h5":
        raise UsageError(f"unknown export format '{format}'; the supported format is h5")
    from ..cache import export_h5, open_cache

    group = open_cache(cache_dir, dataset, encoder)
    if out is None:  # HDF5 is written to a local file: beside a local cache, else here
        folder = Path(group.store).parent if isinstance(group.store, Path) else Path(".")
        out = folder / f"{group.dataset}-{group.name}.h5"
    path = export_h5(group, out)
    typer.echo(f"wrote {path}")
