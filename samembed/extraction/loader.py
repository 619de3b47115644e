"""Decoding and preprocessing images in loader worker processes."""

from __future__ import annotations

import multiprocessing
import os
import signal

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, default_collate

from ..cache.usable import no_data_error
from ..datasets.inputs import InputReader
from ..encoders.geometry import Geometry
from ..errors import CorruptImageError, ImageFormatError
from ..locks import close_inherited_locks


class ImageFiles(Dataset):
    """Item ``j`` is image ``indices[j]`` of the reader's dataset, decoded and preprocessed:
    ``(index, image (C, S, S), valid_hw (2,), orig_hw (2,), error, mask, data)``; the image is the
    geometry's canvas (:meth:`Geometry.canvas`: uint8 RGB, or float32 bands). ``mask`` is
    the (M, M) uint8 training target of a segmentation dataset (:meth:`Geometry.mask_targets`,
    M = ``mask_size``), or an empty tensor; ``data`` is the (1, S, S) uint8 mask of the pixels that
    hold data (1) for rasters, or an empty tensor. With ``raw``, ``image`` (and ``data``) are the
    decoded image at its own size, to be resized on the device. A file that cannot be decoded gives
    zeros and its one-line error; a file that decodes to pixels the encoder cannot take as they are
    (16-bit without a stretch, ...) gives its error prefixed with :data:`FATAL` (workers never
    raise: the main process decides whether to stop or skip). An image with no pixel that holds
    data, or under ``min_data_share`` of them, is given as it is with its ``no data: ...`` error
    (:func:`~samembed.cache.usable.no_data_error`): it is stored unusable."""

    def __init__(self, reader: InputReader, indices: np.ndarray, geometry: Geometry, mask_size: int | None = None,
                 raw: bool = False, min_data_share: float | None = None):
        self.reader = reader
        self.index = reader.index
        self.indices = np.asarray(indices, dtype=np.int64)
        self.geometry = geometry
        self.mask_size = mask_size if self.index.mask_ids is not None else None
        self.raw = raw  # send the decoded image itself; it is resized on the device (resize_on_device)
        self.with_data = reader.may_lack_data
        self.min_data_share = min_data_share

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, j: int):
        i = int(self.indices[j])
        try:
            rgb, data = self.reader(i)
            blank = no_data_error(1.0 if data is None else float(data.mean()), self.min_data_share)
            if data is None and self.with_data:
                data = np.ones(rgb.shape[:2], bool)
            if self.raw:
                image = torch.from_numpy(np.array(rgb)).permute(2, 0, 1)  # a writable copy
                valid = self.geometry.input_shape(rgb.shape[:2])
                data_t = torch.from_numpy(data[None].astype(np.uint8)) if data is not None else torch.zeros(0, dtype=torch.uint8)
            else:
                image, valid = self.geometry.canvas(rgb)
                data_t = self.geometry.mask_to_input(data)[None].to(torch.uint8) if data is not None \
                    else torch.zeros(0, dtype=torch.uint8)
            mask = torch.zeros(0, dtype=torch.uint8)
            if self.mask_size:
                truth = self.index.mask(i)
                if truth.shape != rgb.shape[:2]:
                    raise CorruptImageError(f"mask {self.index.mask_path(i)} is {truth.shape[1]} x {truth.shape[0]} but "
                                            f"its image is {rgb.shape[1]} x {rgb.shape[0]}; fix or remove the pair")
                mask = self.geometry.mask_targets(truth, self.mask_size)
            return i, image, torch.tensor(valid), torch.tensor(rgb.shape[:2]), blank, mask, data_t
        except (CorruptImageError, ImageFormatError) as err:
            side = 1 if self.raw else self.geometry.img_size
            blank = self.geometry.blank(side)
            mask = torch.zeros((self.mask_size, self.mask_size) if self.mask_size else 0, dtype=torch.uint8)
            data_t = torch.zeros((1, side, side) if self.with_data else 0, dtype=torch.uint8)
            zeros = torch.zeros(2, dtype=torch.int64)
            error = str(err) if isinstance(err, CorruptImageError) else FATAL + str(err)
            return i, blank, zeros, zeros, error, mask, data_t


FATAL = "fatal: "  # an error that --skip-bad must not skip


def _init_worker(worker_id: int) -> None:
    """A loader worker must not outlive the main process or keep its locks: it lets go of the
    store's lock file it inherited, dies with its parent (Linux), and leaves SIGINT and SIGTERM
    to the main process, which stops the workers itself after keeping what was encoded."""
    close_inherited_locks()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _die_with_parent()


def _die_with_parent() -> None:
    parent = multiprocessing.parent_process()
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: torch's own watchdog ends the worker a little later
        return
    if parent is not None and os.getppid() != parent.pid:  # the parent died before prctl took effect
        os._exit(0)


def stop_workers(batches) -> None:
    """Stop the worker processes of a DataLoader iterator for good. torch's shutdown asks them to
    stop, waits a few seconds and, as its last resort, sends SIGTERM, which the workers ignore
    (:func:`_init_worker`); a worker still busy then outlives the shutdown and Python's exit waits
    for it forever. A worker holds nothing worth keeping (decoded images), so one still alive
    after torch's shutdown is killed."""
    shutdown = getattr(batches, "_shutdown_workers", None)
    if shutdown is not None:
        shutdown()
    for worker in getattr(batches, "_workers", ()):
        if worker.is_alive():
            worker.kill()
            worker.join(timeout=10)


def collate_images(items):
    """Like the default collate, but images (and data masks) of different sizes (raw images) stay
    lists."""
    images, data = [item[1] for item in items], [item[6] for item in items]
    if len({tuple(i.shape) for i in images}) == 1 and len({tuple(d.shape) for d in data}) == 1:
        return default_collate(items)
    rest = default_collate([item[:1] + item[2:6] for item in items])
    if not any(d.numel() for d in data):  # no raster masks: an empty (B, 0) tensor, as default_collate gives
        data = torch.zeros(len(items), 0, dtype=torch.uint8)
    return (rest[0], images, *rest[1:], data)


def image_loader(
    reader: InputReader, indices: np.ndarray, geometry: Geometry, *, batch_size: int, workers: int, pin_memory: bool,
    mask_size: int | None = None, raw: bool = False, min_data_share: float | None = None,
) -> DataLoader:
    """Batches in index order (the shard writer relies on it). With ``raw`` the images are the
    decoded files (a (B, 3, H, W) tensor, or a list when sizes differ) for :func:`resize_on_device`."""
    return DataLoader(
        ImageFiles(reader, indices, geometry, mask_size, raw, min_data_share), batch_size=batch_size, shuffle=False,
        collate_fn=collate_images,
        num_workers=workers, pin_memory=pin_memory, persistent_workers=False,
        prefetch_factor=4 if workers > 0 else None, worker_init_fn=_init_worker if workers > 0 else None,
    )


def resize_on_device(images, valid_hw: torch.Tensor, img_size: int, device: torch.device,
                     data=None, round: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Raw images (a (B, C, H, W) tensor or a list of (C, H, W)) -> (B, C, S, S) float canvases
    on ``device``: each resized bilinearly (antialiased when shrinking) to its ``valid_hw`` and,
    with ``round`` (uint8 images), rounded to 0-255 as SAM's PIL resize is, placed top-left on zeros. Only the small decoded images
    cross to the device (a 64 x 64 uint8 tile is 1/1024 of its 1024 x 1024 float32 canvas). Raw
    data masks (B, 1, H, W) go to (B, 1, S, S) canvases with nearest-exact sampling, as on the CPU."""
    batch = images if isinstance(images, list) else list(images.unbind(0))
    masks = None if data is None or (not isinstance(data, list) and not data.numel()) else (
        data if isinstance(data, list) else list(data.unbind(0)))
    canvas = torch.zeros(len(batch), batch[0].shape[0], img_size, img_size, device=device)
    data_canvas = torch.zeros(len(batch), 1, img_size, img_size, device=device) if masks is not None else None
    groups: dict[tuple, list[int]] = {}
    for k, image in enumerate(batch):
        groups.setdefault((tuple(image.shape), tuple(valid_hw[k].tolist())), []).append(k)
    for (_, (h, w)), ks in groups.items():
        if h == 0:  # an undecodable image: stays zeros
            continue
        x = torch.stack([batch[k] for k in ks]).to(device, non_blocking=True).float()
        x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
        canvas[ks, :, :h, :w] = x.round_().clamp_(0, 255) if round else x
        if masks is not None:
            m = torch.stack([masks[k] for k in ks]).to(device, non_blocking=True).float()
            data_canvas[ks, :, :h, :w] = F.interpolate(m, size=(h, w), mode="nearest-exact")
    return canvas, (data_canvas > 0.5 if data_canvas is not None else None)
