"""The ``samembed`` command: one small module per command, each a thin wrapper over a library
function. Known errors end in one line (``SAMEMBED_DEBUG=1`` shows the traceback)."""

from __future__ import annotations

from .app import app
from . import extract, info, verify, export, synthetic, train, prompt, run, report, bench, search, serve  # noqa: F401,E402  (command registration)


def main() -> None:
    app()


__all__ = ["app", "main"]
