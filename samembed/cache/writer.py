"""The background writer: collects encoded batches into whole shards and writes them while the
encoder works on the next batches."""

from __future__ import annotations

import queue
import threading

import numpy as np
import zarr

from .layout import ArraySpec, empty_shard_buffers, shard_slice


class ShardWriter:
    """Accepts rows in any batch sizes, in increasing image order, and writes each shard of every
    per-shard array once all of its rows have arrived; then sets ``done[shard]``. A shard that
    never fills (an interrupted run) is never written, so the cache never holds a partial shard.

    Errors in the writer thread are raised in the caller at the next :meth:`submit` or at
    :meth:`close`."""

    def __init__(self, group: zarr.Group, specs: dict[str, ArraySpec], shard_images: int, max_pending: int = 8):
        self.group = group
        self.specs = specs
        self.shard_images = shard_images
        self.num_images = group.attrs["num_images"]
        self.queue: queue.Queue = queue.Queue(maxsize=max_pending)
        self.buffers: dict[int, tuple[dict[str, np.ndarray], np.ndarray]] = {}  # shard -> (arrays, filled rows)
        self.error: BaseException | None = None
        self.shards_written = 0
        self.skipped: list[dict] = []
        self.thread = threading.Thread(target=self._run, name="samembed-writer", daemon=True)
        self.thread.start()

    def submit(self, indices: np.ndarray, rows: dict[str, np.ndarray], skipped: list[dict] = ()) -> None:
        """Queue ``rows[name][j]`` for image ``indices[j]`` (blocks while the queue is full)."""
        self._raise_if_failed()
        while True:
            try:
                self.queue.put((indices, rows, list(skipped)), timeout=0.5)
                return
            except queue.Full:
                self._raise_if_failed()

    def close(self) -> None:
        """Write every shard that is complete, then stop; partial shards are dropped."""
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
        except BaseException as err:  # handed to the caller
            self.error = err
            while self.queue.get() is not None:  # unblock the producer until it closes
                pass

    def _add(self, indices: np.ndarray, rows: dict[str, np.ndarray], skipped: list[dict]) -> None:
        shards = indices // self.shard_images
        for shard in np.unique(shards):
            sel = shards == shard
            span = shard_slice(int(shard), self.shard_images, self.num_images)
            if shard not in self.buffers:
                self.buffers[shard] = (empty_shard_buffers(self.specs, span.stop - span.start),
                                       np.zeros(span.stop - span.start, dtype=bool))
            arrays, filled = self.buffers[shard]
            local = indices[sel] - span.start
            for name, buf in arrays.items():
                buf[local] = rows[name][sel]
            filled[local] = True
            self.skipped += [s for s in skipped if span.start <= s["index"] < span.stop]
            if filled.all():
                self._write(int(shard), span, arrays)

    def _write(self, shard: int, span: slice, arrays: dict[str, np.ndarray]) -> None:
        for name, buf in arrays.items():
            self.group[name][span] = buf
        mine = [s for s in self.skipped if span.start <= s["index"] < span.stop]
        if mine:
            known = {s["index"] for s in self.group.attrs.get("skipped", [])}
            self.group.attrs["skipped"] = list(self.group.attrs.get("skipped", [])) + [
                s for s in mine if s["index"] not in known
            ]
            self.skipped = [s for s in self.skipped if s not in mine]
        self.group["done"][shard] = True  # last: the shard is complete on disk
        del self.buffers[shard]
        self.shards_written += 1
