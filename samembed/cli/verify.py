"""``samembed verify``."""

from __future__ import annotations

from typing import Optional

import typer

from ..errors import CacheError, UsageError
from ..paths import DEFAULT_CACHE_DIR
from .app import CACHE_DIR_HELP, app, friendly_errors


@app.command("verify")
@friendly_errors
def verify_command(
    dataset: Optional[str] = typer.Argument(None, help="Dataset to check (default: every dataset of the cache)."),
    encoder: Optional[str] = typer.Option(None, "--encoder", help="Check only the groups whose name starts with this (e.g. sam-vit_b@1024)."),
    cache_dir: str = typer.Option(str(DEFAULT_CACHE_DIR), "--cache-dir", help=CACHE_DIR_HELP),
):
    """Read every chunk of a cache and check it: checksums, and no chunk missing for a stored image.

    Prints one line per group (ok, damaged: which array and images, or unverifiable for groups
    written before checksums); exits 1 when a group is damaged.

    Example: samembed verify --cache-dir cache
    """
    from ..cache.verify import verify_cache

    checks = verify_cache(cache_dir, dataset, encoder, progress=True)
    if not checks:
        raise UsageError(f"no cache group to check in {cache_dir}" + (f" for '{dataset}'" if dataset else "")
                         + "; `samembed info` lists what the cache holds")
    for check in checks:
        typer.echo(check.line())
    damaged = [c for c in checks if c.state == "damaged"]
    if damaged:
        raise CacheError(f"{len(damaged)} of {len(checks)} cache groups {'is' if len(damaged) == 1 else 'are'} damaged; "
                         "run their extraction again with --overwrite to rebuild them")
