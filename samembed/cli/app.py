"""The typer application and the one place that turns known errors into one-line messages."""

from __future__ import annotations

import functools
import os
import sys

import typer

from ..errors import SamembedError

app = typer.Typer(
    name="samembed",
    help="Frozen foundation-model embeddings for remote sensing: extract once into a Zarr cache, "
    "train cheap heads many times.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def fail(message: str, code: int = 1):
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def friendly_errors(command):
    """Turn :class:`SamembedError` and Ctrl-C into one line on stderr and a non-zero exit."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except SamembedError as err:
            if os.environ.get("SAMEMBED_DEBUG"):
                raise
            fail(str(err))
        except KeyboardInterrupt:
            if os.environ.get("SAMEMBED_DEBUG"):
                raise
            typer.echo("interrupted; completed shards are kept, run the same command again to resume", err=True)
            sys.exit(130)

    return wrapper
