"""``samembed serve``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..paths import DEFAULT_CACHE_DIR, DEFAULT_RUNS_DIR
from .app import CACHE_DIR_HELP, app, friendly_errors


@app.command("serve")
@friendly_errors
def serve_command(
    cache_dir: str = typer.Option(str(DEFAULT_CACHE_DIR), "--cache-dir", help=CACHE_DIR_HELP),
    runs_dir: Path = typer.Option(DEFAULT_RUNS_DIR, "--runs-dir", help="Runs store whose results the page shows (runs.jsonl)."),
    out: Path = typer.Option(Path("served"), "--out", help="Folder the page writes into: saved masks (as `samembed prompt` writes them) and the report."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on. Any address other than loopback needs the token the command prints (checked on every request)."),
    port: int = typer.Option(8765, "--port", help="Port to listen on."),
    token: Optional[str] = typer.Option(None, "--token", help="The token for a non-loopback --host (default: a new random one, printed)."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="The SAM or SAM 2 checkpoint the cache was extracted with, if not where extraction found it (prompts)."),
):
    """Look into the cache in a browser: browse images and scenes, click to segment with SAM, search, read results.

    Serves http://127.0.0.1:PORT/ until Ctrl-C (docs/serve.md). Needs the serve extra: pip install "samembed[serve]".

    Example: samembed serve --cache-dir demo/cache --runs-dir demo/experiments
    """
    from ..serve import serve

    serve(cache_dir, runs_dir, out, host=host, port=port, token=token, checkpoint=checkpoint, echo=typer.echo)
