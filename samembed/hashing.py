"""File checksums, with a small memo so that large checkpoints are hashed once per change."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from .paths import user_cache_dir

_CHUNK = 1 << 20


def _digest(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(_CHUNK):
            h.update(block)
    return h.hexdigest()


def sha256sum(path: str | os.PathLike, memo: bool = True) -> str:
    """sha256 of a file. With ``memo`` the digest is remembered in the user cache folder, keyed
    by absolute path, size and modification time, so a 2.5 GB checkpoint is read once, not at
    every run."""
    path = Path(path).resolve()
    if not memo:
        return _digest(path, "sha256")
    st = path.stat()
    key = f"{path}|{st.st_size}|{st.st_mtime_ns}"
    memo_file = user_cache_dir() / "sha256-memo.json"
    try:
        table = json.loads(memo_file.read_text())
    except (OSError, ValueError):
        table = {}
    if key in table:
        return table[key]
    digest = _digest(path, "sha256")
    table[key] = digest
    try:
        memo_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo_file.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(table))
        os.replace(tmp, memo_file)
    except OSError:
        pass  # the memo is an optimisation only
    return digest


def short_hash(obj) -> str:
    """A 16-hex-digit sha256 of a JSON-serialisable object (stable key order)."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
