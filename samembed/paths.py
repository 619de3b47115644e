"""Where samembed keeps things by default."""

from __future__ import annotations

import os
import re
from pathlib import Path

DEFAULT_CACHE_DIR = Path("cache")
DEFAULT_DATA_ROOT = Path("data")
DEFAULT_RUNS_DIR = Path("experiments")

# A name samembed makes a file or folder of (a named dataset's store, a study's report folder):
# letters, digits, '.', '_' and '-', starting with a letter or digit, at most 64 characters.
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def user_cache_dir() -> Path:
    """Folder for downloaded model weights and small memos: ``$SAMEMBED_HOME``, else
    ``$XDG_CACHE_HOME/samembed``, else ``~/.cache/samembed``."""
    if env := os.environ.get("SAMEMBED_HOME"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "samembed"
