"""``samembed`` as torchrun runs it in the distributed tests, with hooks set from the environment:

- ``TEST_SHARD_IMAGES=n``: n images per shard (the CLI has no option for it), so 30 images make
  several shards to share out;
- ``TEST_PAUSE_DIR=dir``: each rank writes ``dir/ready-<rank>`` at its first batch (the writer
  lock is held and the group exists) and waits for ``dir/go``;
- ``TEST_KILL=<rank>:<batch>``: that rank kills itself (SIGKILL) at that batch, a second after
  its writer thread was handed the earlier batches;
- ``TEST_SLOW_RANK=<rank>``: that rank sleeps a second before each batch.

Run as ``torchrun ... tests/torchrun_entry.py extract eurosat ...``."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import samembed.extraction.encode as encode
import samembed.extraction.plan as plan
from samembed.cli import main


def _hooked(real, rank: int):
    calls = 0

    def launch(*args, **kwargs):
        nonlocal calls
        calls += 1
        pause = os.environ.get("TEST_PAUSE_DIR")
        if pause and calls == 1:
            Path(pause, f"ready-{rank}").touch()
            deadline = time.monotonic() + 120
            while not Path(pause, "go").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
        if os.environ.get("TEST_KILL") == f"{rank}:{calls}":
            time.sleep(1)
            os.kill(os.getpid(), signal.SIGKILL)
        if os.environ.get("TEST_SLOW_RANK") == str(rank):
            time.sleep(1)
        return real(*args, **kwargs)

    return launch


if __name__ == "__main__":
    if "TEST_SHARD_IMAGES" in os.environ:
        shard_images = int(os.environ["TEST_SHARD_IMAGES"])
        plan.default_shard_images = lambda *args: shard_images
    encode._launch = _hooked(encode._launch, int(os.environ.get("RANK", 0)))
    sys.argv = ["samembed", *sys.argv[1:]]
    main()
