"""The background writer: collects encoded batches by shard and writes them while the encoder works
on the next batches."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable

import numpy as np
import zarr

from .integrity import runs_of as _runs, writable
from .retry import retrying
from .layout import ArraySpec, empty_shard_buffers, shard_slice


class ShardWriter:
    """Writes the rows of the images ``expected`` in this run (any batch sizes, increasing image
    order). A shard is written once all of its expected rows have arrived, every array first and
    its ``done`` flags last, so a stored image is always whole.

    When the group keeps a ``done`` flag per image, what has arrived of an unfinished shard is
    also written every ``save_every`` seconds (so a killed process loses at most that much work)
    and at :meth:`close` (so an interrupted run loses nothing it encoded). With one flag per shard
    (groups made before that), only whole shards are written. Errors in the writer thread are
    raised in the caller at the next :meth:`submit` or at :meth:`close`.

    ``check`` (if given) is called before every write and raises if this run may no longer write
    the group (its lease on object storage was lost)."""

    def __init__(self, group: zarr.Group, specs: dict[str, ArraySpec], shard_images: int, expected: np.ndarray,
                 done_per_image: bool = True, max_pending: int = 8, save_every: float = 10.0,
                 check: Callable[[], None] | None = None):
        self.group = group
        self.check = check
        self.specs = {name: spec for name, spec in specs.items() if spec.per_shard}
        self.shard_images = shard_images
        self.num_images = int(group.attrs["num_images"])
        self.done_per_image = done_per_image
        shards, counts = np.unique(np.asarray(expected) // shard_images, return_counts=True)
        self.expected = dict(zip(shards.tolist(), counts.tolist()))
        self.queue: queue.Queue = queue.Queue(maxsize=max_pending)
        # shard -> (arrays, rows filled, rows written)
        self.buffers: dict[int, tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]] = {}
        self.save_every = save_every
        self.saved_at = time.monotonic()
        self.error: BaseException | None = None
        self.stored = 0  # images whose done flag this writer set
        self.thread = threading.Thread(target=self._run, name="samembed-writer", daemon=True)
        self.thread.start()

    def submit(self, indices: np.ndarray, rows: dict[str, np.ndarray]) -> None:
        """Queue ``rows[name][j]`` for image ``indices[j]`` (blocks while the queue is full)."""
        self._raise_if_failed()
        while True:
            try:
                self.queue.put((indices, rows), timeout=0.5)
                return
            except queue.Full:
                self._raise_if_failed()

    def close(self) -> None:
        """Write every shard that is complete and, with per-image flags, the rows that arrived of
        the others; then stop."""
        self.queue.put(None)
        self.thread.join()
        self._raise_if_failed()

    def _raise_if_failed(self) -> None:
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        try:
            while (item := self.queue.get()) is not None:
                self._add(*item)
            self._save_unfinished()
        except BaseException as err:  # handed to the caller
            self.error = err
            while self.queue.get() is not None:  # unblock the producer until it closes
                pass

    def _add(self, indices: np.ndarray, rows: dict[str, np.ndarray]) -> None:
        shards = indices // self.shard_images
        for shard in np.unique(shards).tolist():
            sel = shards == shard
            span = shard_slice(shard, self.shard_images, self.num_images)
            if shard not in self.buffers:
                size = span.stop - span.start
                self.buffers[shard] = (empty_shard_buffers(self.specs, size), np.zeros(size, bool), np.zeros(size, bool))
            arrays, filled, _ = self.buffers[shard]
            local = indices[sel] - span.start
            for name, buf in arrays.items():
                buf[local] = rows[name][sel]
            filled[local] = True
            if filled.sum() == self.expected.get(shard, len(filled)):
                self._write(shard)
                del self.buffers[shard]
        if time.monotonic() - self.saved_at > self.save_every:
            self._save_unfinished()

    def _save_unfinished(self) -> None:
        """Write what has arrived of the shards not yet complete (per-image flags only)."""
        if self.done_per_image:
            for shard in sorted(self.buffers):
                self._write(shard)
        self.saved_at = time.monotonic()

    def _write(self, shard: int) -> None:
        """Write the rows of ``shard`` that arrived and are not written yet, then their flags."""
        arrays, filled, written = self.buffers[shard]
        span = shard_slice(shard, self.shard_images, self.num_images)
        rows = np.flatnonzero(filled & ~written)
        whole = len(rows) == len(filled)
        if not len(rows) or not (whole or self.done_per_image):
            return
        if self.check is not None:
            self.check()
        for name, buf in arrays.items():
            array = writable(self.group[name])  # every chunk written: a missing one is damage
            if whole:
                self._store(array, span, buf)  # one write of the whole shard
            else:
                for start, stop in _runs(rows):
                    self._store(array, slice(span.start + start, span.start + stop), buf[start:stop])
        done = writable(self.group["done"])
        if self.done_per_image:  # last: the images are complete on disk
            for start, stop in _runs(rows):
                self._store(done, slice(span.start + start, span.start + stop), True)
        else:
            self._store(done, shard, True)
        written[rows] = True
        self.stored += len(rows)

    def _store(self, array: zarr.Array, where, value) -> None:
        """``array[where] = value``, tried again while object storage does not answer for a moment."""

        def store() -> None:
            array[where] = value

        retrying(store, f"writing {self.group.name}",
                 kept=lambda: f"the {self.stored} images this run stored before are kept")
