"""The typer application and the one place that turns known errors into one-line messages."""

from __future__ import annotations

import functools
import os
import signal
import sys
import warnings

import typer

from ..errors import SamembedError, SamembedWarning, storage_error

app = typer.Typer(
    name="samembed",
    help="Frozen foundation-model embeddings for remote sensing: extract once into a Zarr cache, "
    "train cheap heads many times.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


CACHE_DIR_HELP = ("Cache folder, or an object-store URL: s3://bucket/prefix, gs://bucket/prefix, any fsspec URL "
                  "(credentials from the usual environment variables or profile; docs/distributed.md).")


def _print_version(value: bool) -> None:
    if value:
        from ..version import __version__

        typer.echo(f"samembed {__version__}")
        raise typer.Exit()


@app.callback()
def main(version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                      help="Print samembed's version and exit.")) -> None:
    """Frozen foundation-model embeddings for remote sensing: extract once into a Zarr cache,
    train cheap heads many times."""


def parse_list(text: str, convert, name: str) -> list:
    """A comma-separated option (``--heads linear,knn``) as a list of ``convert``-ed items."""
    from ..errors import UsageError

    try:
        return [convert(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UsageError(f"{name} must be a comma-separated list, not '{text}'") from None


def _rank() -> str:
    """``[rank r of W] `` in a process launched by torchrun with several processes, else ``""``."""
    world = os.environ.get("WORLD_SIZE", "1")
    return f"[rank {os.environ.get('RANK', '?')} of {world}] " if world not in ("", "1") else ""


def fail(message: str, code: int = 1):
    typer.echo(f"error: {_rank()}{message}", err=True)
    raise typer.Exit(code)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    if issubclass(category, SamembedWarning):
        typer.echo(f"warning: {message}", err=True)
    else:
        _default_showwarning(message, category, filename, lineno, file, line)


_default_showwarning = warnings.showwarning


def _terminate(signum, frame):
    """SIGTERM (what Slurm and other schedulers send before killing a job) stops the work as
    Ctrl-C does: what is finished is kept, and the message says so."""
    raise KeyboardInterrupt


def friendly_errors(command):
    """Turn :class:`SamembedError`, Ctrl-C, SIGTERM and operating-system errors into one line on
    stderr and a non-zero exit; show samembed's warnings as ``warning:`` lines."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        debug = bool(os.environ.get("SAMEMBED_DEBUG"))
        shown, warnings.showwarning = warnings.showwarning, _show_warning
        on_term = signal.signal(signal.SIGTERM, _terminate)
        try:
            return command(*args, **kwargs)
        except SamembedError as err:
            if debug:
                raise
            fail(str(err), err.exit_code)
        except KeyboardInterrupt:
            if debug:
                raise
            typer.echo(f"{_rank()}interrupted; what was finished is kept: run the same command again to go on",
                       err=True)
            sys.exit(130)
        except OSError as err:  # the environment refused something (disk full, permission)
            if debug:
                raise
            where = f"writing {err.filename}" if err.filename else "reading or writing files"
            fail(str(storage_error(err, where)))
        finally:
            warnings.showwarning = shown
            signal.signal(signal.SIGTERM, on_term)

    return wrapper
