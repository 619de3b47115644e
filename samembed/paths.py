"""Where samembed keeps things by default."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_CACHE_DIR = Path("cache")
DEFAULT_DATA_ROOT = Path("data")
DEFAULT_RUNS_DIR = Path("experiments")


def user_cache_dir() -> Path:
    """Folder for downloaded model weights and small memos: ``$SAMEMBED_HOME``, else
    ``$XDG_CACHE_HOME/samembed``, else ``~/.cache/samembed``."""
    if env := os.environ.get("SAMEMBED_HOME"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "samembed"
