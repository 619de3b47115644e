"""Decoding and preprocessing images in loader worker processes."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .datasets.base import DatasetIndex
from .datasets.images import read_rgb
from .encoders.base import Preprocessor
from .errors import CorruptImageError
from .segmentation.geometry import mask_targets, read_mask


class ImageFiles(Dataset):
    """Item ``j`` is image ``indices[j]`` of ``index``, decoded and preprocessed:
    ``(index, image (3, S, S) uint8, valid_hw (2,), orig_hw (2,), error, mask)``. ``mask`` is the
    (M, M) uint8 training target of a segmentation dataset (:func:`mask_targets`, M =
    ``mask_size``), or an empty tensor. A file that cannot be decoded gives zeros and its one-line
    error (workers never raise: the main process decides whether to stop or skip)."""

    def __init__(self, index: DatasetIndex, indices: np.ndarray, preprocess: Preprocessor, img_size: int,
                 mask_size: int | None = None):
        self.root = index.root
        self.image_ids = [index.image_ids[i] for i in indices]
        self.mask_ids = [index.mask_ids[i] for i in indices] if index.mask_ids is not None else None
        self.indices = np.asarray(indices, dtype=np.int64)
        self.preprocess = preprocess
        self.img_size = img_size
        self.mask_size = mask_size if self.mask_ids is not None else None

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, j: int):
        try:
            rgb = read_rgb(self.root / self.image_ids[j])
            image, valid = self.preprocess(rgb)
            mask = torch.zeros(0, dtype=torch.uint8)
            if self.mask_size:
                truth = read_mask(self.root / self.mask_ids[j])
                if truth.shape != rgb.shape[:2]:
                    raise CorruptImageError(f"mask {self.root / self.mask_ids[j]} is {truth.shape[1]} x "
                                            f"{truth.shape[0]} but its image is {rgb.shape[1]} x {rgb.shape[0]}; "
                                            "fix or remove the pair")
                mask = mask_targets(truth, self.img_size, self.mask_size)
            return int(self.indices[j]), image, torch.tensor(valid), torch.tensor(rgb.shape[:2]), "", mask
        except CorruptImageError as err:
            blank = torch.zeros(3, self.img_size, self.img_size, dtype=torch.uint8)
            mask = torch.zeros((self.mask_size, self.mask_size) if self.mask_size else 0, dtype=torch.uint8)
            zeros = torch.zeros(2, dtype=torch.int64)
            return int(self.indices[j]), blank, zeros, zeros, str(err), mask


def image_loader(
    index: DatasetIndex, indices: np.ndarray, preprocess: Preprocessor, img_size: int, *, batch_size: int,
    workers: int, pin_memory: bool, mask_size: int | None = None,
) -> DataLoader:
    """Batches in index order (the shard writer relies on it)."""
    return DataLoader(
        ImageFiles(index, indices, preprocess, img_size, mask_size), batch_size=batch_size, shuffle=False,
        num_workers=workers, pin_memory=pin_memory, persistent_workers=False,
        prefetch_factor=4 if workers > 0 else None,
    )
