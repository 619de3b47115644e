"""Decoding and preprocessing images in loader worker processes."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .datasets.base import DatasetIndex
from .datasets.images import read_rgb
from .encoders.base import Preprocessor
from .errors import CorruptImageError


class ImageFiles(Dataset):
    """Item ``j`` is image ``indices[j]`` of ``index``, decoded and preprocessed:
    ``(index, image (3, S, S) uint8, valid_hw (2,), orig_hw (2,), error)``. A file that cannot
    be decoded gives a zero image and its one-line error (workers never raise: the main process
    decides whether to stop or skip)."""

    def __init__(self, index: DatasetIndex, indices: np.ndarray, preprocess: Preprocessor, img_size: int):
        self.root = index.root
        self.image_ids = [index.image_ids[i] for i in indices]
        self.indices = np.asarray(indices, dtype=np.int64)
        self.preprocess = preprocess
        self.img_size = img_size

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, j: int):
        try:
            rgb = read_rgb(self.root / self.image_ids[j])
            image, valid = self.preprocess(rgb)
            return int(self.indices[j]), image, torch.tensor(valid), torch.tensor(rgb.shape[:2]), ""
        except CorruptImageError as err:
            blank = torch.zeros(3, self.img_size, self.img_size, dtype=torch.uint8)
            return int(self.indices[j]), blank, torch.zeros(2, dtype=torch.int64), torch.zeros(2, dtype=torch.int64), str(err)


def image_loader(
    index: DatasetIndex, indices: np.ndarray, preprocess: Preprocessor, img_size: int, *, batch_size: int,
    workers: int, pin_memory: bool,
) -> DataLoader:
    """Batches in index order (the shard writer relies on it)."""
    return DataLoader(
        ImageFiles(index, indices, preprocess, img_size), batch_size=batch_size, shuffle=False,
        num_workers=workers, pin_memory=pin_memory, persistent_workers=False,
        prefetch_factor=4 if workers > 0 else None,
    )
