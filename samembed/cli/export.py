"""``samembed export``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import UsageError
from ..paths import DEFAULT_CACHE_DIR
from .app import CACHE_DIR_HELP, app, friendly_errors

FORMATS = {"h5": ".h5", "geoparquet": ".parquet", "stac": "-stac", "zarr": ""}


@app.command("export")
@friendly_errors
def export_command(
    dataset: Optional[str] = typer.Argument(None, help="Dataset whose cache to export (default: the cache's only dataset)."),
    format: str = typer.Option("h5", "--format", help="h5 (HDF5), geoparquet (one row per image or chip, footprints for georeferenced data), stac (a Collection and Items with the emb: extension) or zarr (the cache group itself, given the geoemb: attributes and xarray coordinates in place)."),
    encoder: Optional[str] = typer.Option(None, "--encoder", help="Cache group (e.g. sam-vit_b@1024); needed when there are several."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output file or folder (default <cache-dir>/<dataset>-<group>.h5, .parquet or -stac/; for a cache on object storage, in the current folder)."),
    dtype: str = typer.Option("float32", "--dtype", help="geoparquet: float32 (the stored float16 widened exactly) or float16 (as stored, half the size)."),
    require_geometry: bool = typer.Option(False, "--require-geometry", help="geoparquet: refuse data without georeferencing instead of writing plain Parquet."),
    crs: Optional[str] = typer.Option(None, "--crs", help="geoparquet: reproject every footprint to this CRS (e.g. EPSG:4326); needed when the images lie in several CRSs."),
    geoparquet: Optional[Path] = typer.Option(None, "--geoparquet", help="stac: a GeoParquet file of this group to list as an asset beside the Zarr group."),
    cache_dir: str = typer.Option(str(DEFAULT_CACHE_DIR), "--cache-dir", help=CACHE_DIR_HELP),
):
    """Write a cache group where other tools read it: HDF5, GeoParquet, STAC, or xarray-ready Zarr.

    Example: samembed export scene --format geoparquet --out scene.parquet
    """
    if format not in FORMATS:
        raise UsageError(f"unknown export format '{format}'; choose one of {', '.join(FORMATS)}")
    from ..cache import open_cache

    group = open_cache(cache_dir, dataset, encoder)
    if format == "zarr":
        from ..formats import upgrade_group

        added = upgrade_group(group)
        typer.echo(f"{group.where}: {'added' if added else 'already has'} the geoemb: attributes and xarray coordinates "
                   "(metadata only; the embeddings and the signature are unchanged)")
        return
    if out is None:  # written to local files: beside a local cache, else here
        folder = Path(group.store).parent if isinstance(group.store, Path) else Path(".")
        out = folder / f"{group.dataset}-{group.name}{FORMATS[format]}"
    if format == "h5":
        from ..cache import export_h5

        path = export_h5(group, out)
    elif format == "geoparquet":
        from ..formats import export_geoparquet

        path = export_geoparquet(group, out, dtype=dtype, require_geometry=require_geometry, crs=crs)
    else:
        from ..formats import write_stac

        path = write_stac(group, out, geoparquet)
    typer.echo(f"wrote {path}")
