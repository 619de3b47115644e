"""The third stage of an extraction: encode the images of some shards and store them.

Decoding runs in loader worker processes; the device encodes one batch while the previous
batch's results come back to the host and the writer thread stores them
(:class:`~samembed.cache.writer.ShardWriter`), so neither waits on the other."""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import zarr
from tqdm.auto import tqdm

from ..cache.layout import DONE_PER_IMAGE, images_done, plan_arrays, shard_slice
from ..cache.store import record_run
from ..cache.usable import NO_DATA
from ..cache.writer import ShardWriter
from ..datasets import DatasetIndex
from ..devices import compute_dtype
from ..errors import CacheError, CorruptImageError, ImageFormatError, Interrupted, UsageError, storage_error
from ..datasets.inputs import InputReader
from ..threads import cpu_threads
from .loader import FATAL, image_loader, resize_on_device, stop_workers
from .plan import ExtractionPlan, default_workers


@dataclass
class ExtractResult:
    store: Path | str  # the dataset's store: a Path in a local folder, a URL on object storage
    group: str
    num_images: int  # in the dataset
    encoded: int  # by this call (0 when the cache was already complete), blank ones included
    skipped: int  # bad images skipped by this call
    seconds: float  # wall time of this call's encoding loop
    world_size: int = 1  # processes of a distributed run (torchrun)
    rank: int = 0  # this process's rank; rank 0 holds the whole run's figures
    # distributed: {rank, host, shards, encoded, skipped, blank, seconds} of every rank
    ranks: list[dict] = field(default_factory=list)
    blank: int = 0  # of the encoded images, those without data (or under --min-data-share): stored unusable

    @property
    def images_per_second(self) -> float:  # blank images included: the encoder ran on them
        return self.encoded / self.seconds if self.seconds > 0 else 0.0


def check_runtime_options(batch_size: int | None, workers: int | None) -> None:
    if (batch_size is not None and batch_size < 1) or (workers is not None and workers < 0):
        raise UsageError("--batch-size must be at least 1 and --workers at least 0")


def encode_shards(
    plan: ExtractionPlan, group: zarr.Group, shards: list[int], *, batch_size: int | None = None,
    workers: int | None = None, skip_bad: bool = False, progress: bool = True, compile: bool = False,
    log: dict | None = None, check: Callable[[], None] | None = None,
) -> ExtractResult:
    """Encode the images of ``shards`` that are not stored yet into ``group`` (made by
    ``plan.open_group()``) and store them. ``batch_size`` defaults to 16 on CUDA and 4 on the CPU,
    ``workers`` to min(8, CPUs) on CUDA and 1 on the CPU. A corrupt image stops the run unless
    ``skip_bad``; an interrupt (Ctrl-C, SIGTERM) stores what was encoded and raises
    :class:`Interrupted` saying how much is stored. ``log`` adds fields to this run's log entry;
    ``check`` is called before each write (a lease on object storage that must still be held).
    Writers that run at once must be given disjoint ``shards`` (a distributed run, :mod:`.distributed`).
    Blank images (no pixel holds data, or under ``plan.min_data_share``) are stored unusable:
    ``ok`` false, zeros, their ``no data: ...`` error (:mod:`samembed.cache.usable`)."""
    check_runtime_options(batch_size, workers)
    device = torch.device(plan.device)
    batch_size = (16 if device.type == "cuda" else 4) if batch_size is None else batch_size
    workers = default_workers(plan.device) if workers is None else workers
    result = ExtractResult(plan.store, plan.group_name, len(plan.index), 0, 0, 0.0)
    shard_images = int(group.attrs["shard_images"])  # an existing group keeps its own
    n = len(plan.index)
    waiting = ~images_done(group["done"][:], dict(group.attrs))
    indices = np.concatenate([np.flatnonzero(waiting[shard_slice(s, shard_images, n)]) + s * shard_images
                              for s in sorted(shards)] or [np.empty(0, np.int64)])
    if len(indices):
        with cpu_threads(device) as threads:  # the idle cores' threads on the CPU (samembed/threads.py)
            _encode(plan, group, indices, result, device=device, batch_size=batch_size, workers=workers,
                    skip_bad=skip_bad, progress=progress, compile=compile,
                    log={**(log or {}), **({"threads": threads} if threads else {})}, check=check)
    return result


def _encode(
    plan: ExtractionPlan, group: zarr.Group, indices: np.ndarray, result: ExtractResult, *, device: torch.device,
    batch_size: int, workers: int, skip_bad: bool, progress: bool, compile: bool, log: dict,
    check: Callable[[], None] | None = None,
) -> None:
    """Encode the images ``indices`` (sorted) into ``group``, updating ``result`` as it goes."""
    index, spec = plan.index, plan.spec
    shard_images = int(group.attrs["shard_images"])
    n = len(index)
    mask_size = group.attrs.get("mask_size")
    done_per_image = group.attrs.get("done_unit") == DONE_PER_IMAGE
    specs = {name: s for name, s in plan_arrays(n, spec.pooled_dims, spec.map_channels, plan.grid, shard_images,
                                                mask_size, data_share=bool(group.attrs.get("data_share")),
                                                prompt_maps=plan.prompt_maps).items()
             if name in group}  # older groups lack 'error'
    model = spec.build(device, prompt_maps=bool(plan.prompt_maps))
    if compile:
        model = torch.compile(model, dynamic=False)  # the last, smaller batch compiles once more
    dtype = compute_dtype(device)
    loader = image_loader(InputReader(index, plan.composite), indices, spec.geometry, batch_size=batch_size,
                          workers=workers, pin_memory=device.type == "cuda", mask_size=mask_size,
                          raw=plan.resize_on_device, min_data_share=plan.min_data_share)
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    writer = ShardWriter(group, specs, shard_images, indices, done_per_image, check=check)
    legacy_skipped: list[dict] = []  # groups made before the 'error' array list skipped images in an attribute
    t0 = time.perf_counter()
    interrupted = None
    batches = None  # the loader's iterator: its workers are stopped for good whatever happens
    try:
        batches = iter(loader)
        ranked = "rank" in log  # one process of a distributed run: its own images
        with tqdm(total=len(indices) if ranked else n, initial=0 if ranked else n - len(indices), unit="img",
                  desc=f"extract {result.group}" + (f" (rank {log['rank']} of {log['world_size']})" if ranked else ""),
                  disable=not progress, dynamic_ncols=True) as bar:
            host = _HostBuffers(device)
            pending = None  # the batch whose results are on their way to the host

            def finish(flight: _InFlight) -> None:
                rows, skipped = _collect(flight, index)
                if "error" not in specs:
                    rows.pop("error")
                    legacy_skipped.extend(skipped)
                writer.submit(flight.ids.numpy(), rows)
                result.encoded += len(flight.ids) - len(flight.bad)
                result.skipped += len(flight.bad)
                result.blank += len(flight.blank)
                bar.update(len(flight.ids))

            for batch in batches:
                if plan.resize_on_device:
                    images, data = resize_on_device(batch[1], batch[2], spec.img_size, device, batch[6],
                                                    round=spec.geometry.pixels == "uint8")
                    batch = (batch[0], images, *batch[2:6], data)
                try:
                    flight = _launch(model, batch, device, dtype, plan.grid, skip_bad, host)
                except BaseException:  # a bad image or Ctrl-C: keep the batch already encoded
                    if pending is not None:
                        finish(pending)
                    raise
                if pending is not None:  # while the device works on this batch, store the last one
                    finish(pending)
                pending = flight
            if pending is not None:
                finish(pending)
    except KeyboardInterrupt as err:  # Ctrl-C, or SIGTERM through the CLI
        interrupted = err
    finally:
        try:
            writer.close()  # stores every image encoded so far, also after an error or an interrupt
        except OSError as err:
            raise storage_error(err, f"writing the cache {result.store}/{result.group}") from None
        finally:
            result.seconds = time.perf_counter() - t0
            stop_workers(batches)  # after the images are safe: torch's shutdown may wait seconds for a busy worker
    if legacy_skipped:
        group.attrs["skipped"] = list(group.attrs.get("skipped", [])) + legacy_skipped
    record_run(group, {
        "started": started, "seconds": round(result.seconds, 3), "encoded": result.encoded,
        "stored": writer.stored, "skipped": result.skipped, "blank": result.blank, "device": _device_name(device),
        "batch_size": batch_size,
        "workers": workers, "images_per_second": round(result.images_per_second, 3), "host": socket.gethostname(),
        "pid": os.getpid(), **spec.run_log(), **log,
        **({"interrupted": True} if interrupted else {}),
    })
    if interrupted is not None:
        stored = int(images_done(group["done"][:], dict(group.attrs)).sum())
        raise Interrupted(f"interrupted: {stored} of {n} images of {result.store}/{result.group} are stored "
                          f"({writer.stored} by this run); run the same command again to resume") from interrupted


@dataclass
class _InFlight:
    """A launched batch: its loader fields, its outputs (float16, on the host once ``ready``)."""

    ids: torch.Tensor
    valid_hw: torch.Tensor
    orig_hw: torch.Tensor
    errors: list[str]
    masks: torch.Tensor
    outputs: dict[str, torch.Tensor]
    ready: torch.cuda.Event | None
    bad: list[int]  # unreadable, skipped
    blank: list[int]  # no data: encoded, stored unusable


class _HostBuffers:
    """Two pinned host buffers per output shape, used in turn, so device-to-host copies run
    asynchronously into memory that is not being read."""

    def __init__(self, device: torch.device):
        self.device, self.buffers, self.turn = device, {}, 0

    def like(self, name: str, x: torch.Tensor) -> torch.Tensor:
        key = (name, tuple(x.shape), self.turn)
        if key not in self.buffers:
            self.buffers[key] = torch.empty(x.shape, dtype=x.dtype, pin_memory=True)
        return self.buffers[key]

    def flip(self) -> None:
        self.turn ^= 1


def _launch(model, batch, dev: torch.device, dtype: torch.dtype, grid: int, skip_bad: bool,
            host: _HostBuffers) -> _InFlight:
    """Queue one batch on the device and its results' copy to the host; returns without waiting
    (on CUDA), so the caller can store the previous batch meanwhile."""
    ids, images, valid_hw, orig_hw, errors, masks, data = batch
    data = None if data is None or not data.numel() else data.to(dev, non_blocking=True).bool()
    blank = [j for j, e in enumerate(errors) if e.startswith(NO_DATA)]
    bad = [j for j, e in enumerate(errors) if e and not e.startswith(NO_DATA)]
    fatal = [errors[j].removeprefix(FATAL) for j in bad if errors[j].startswith(FATAL)]
    if fatal:
        raise ImageFormatError(fatal[0])
    if bad and not skip_bad:
        raise CorruptImageError(errors[bad[0]])
    autocast = torch.autocast(dev.type, dtype=dtype) if dtype != torch.float32 else contextlib.nullcontext()
    with torch.inference_mode(), autocast:
        # (pooled, feature map) or, with the prompt maps of SAM 2's decoder, (pooled, feature map, maps)
        pooled, feature_map, *maps = model(images.to(dev, non_blocking=True), valid_hw.to(dev, non_blocking=True), data)
        grid_map = F.adaptive_avg_pool2d(feature_map.float(), grid)
        outputs = {name: v.float().to(torch.float16)
                   for name, v in {**pooled, "grid": grid_map, **(maps[0] if maps else {})}.items()}
        if data is not None:  # the share of each grid cell's pixels that hold data, like valid_hw for padding
            outputs["data_share"] = (F.adaptive_avg_pool2d(data.float(), grid)[:, 0] * 255).round().to(torch.uint8)
    event = None
    if dev.type == "cuda":
        outputs = {name: host.like(name, v).copy_(v, non_blocking=True) for name, v in outputs.items()}
        host.flip()
        event = torch.cuda.Event()
        event.record()
    return _InFlight(ids, valid_hw, orig_hw, list(errors), masks, outputs, event, bad, blank)


def _collect(flight: _InFlight, index: DatasetIndex) -> tuple[dict[str, np.ndarray], list[dict]]:
    """Wait for a launched batch; returns the rows to store and the images stored unusable
    (skipped as unreadable, or blank). A blank image keeps its ``data_share``; every embedding of
    an unusable image is zeros."""
    if flight.ready is not None:
        flight.ready.synchronize()
    rows = {name: v.cpu().numpy().copy() for name, v in flight.outputs.items()}
    for name, v in rows.items():
        if v.dtype == np.float16:
            _checked_float16(v, name)
    ok = np.ones(len(flight.ids), dtype=bool)
    unusable = flight.bad + flight.blank
    ok[unusable] = False
    for name in flight.outputs:
        rows[name][flight.bad if name == "data_share" else unusable] = 0
    rows.update(ok=ok, valid_hw=flight.valid_hw.numpy().astype(np.int32), orig_hw=flight.orig_hw.numpy().astype(np.int32),
                error=np.asarray(flight.errors, dtype=object))
    if flight.masks.numel():
        rows["mask"] = flight.masks.numpy()
    skipped = [{"index": int(flight.ids[j]), "image_id": index.image_ids[int(flight.ids[j])], "error": flight.errors[j]}
               for j in unusable]
    return rows, skipped


def _checked_float16(out: np.ndarray, name: str) -> np.ndarray:
    if not np.isfinite(out).all():
        raise CacheError(f"the '{name}' embeddings overflow float16 (values beyond 65504); this encoder cannot be cached as float16")
    return out


def _device_name(dev: torch.device) -> str:
    return torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
