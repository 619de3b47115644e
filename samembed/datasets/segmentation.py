"""Segmentation datasets: ``road`` (Cheng et al. 2017, its own 160/20/44 split) and
``seg-folder`` (any images/ and masks/ folder pair). Their labels are all 0 (class
``background``); the masks say which pixels are the foreground (``road``)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..errors import DataNotFoundError, UsageError
from ..paths import DEFAULT_DATA_ROOT
from .base import DatasetIndex, is_image, relative_id
from .masks import scan_mask_encoding
from .registry import register_dataset, split_from_subsets

SEGMENTATION_CLASSES = ["background", "road"]
ROAD_URL = "https://www.kaggle.com/datasets/ipythonx/tgrs-road"
ROAD_HELP = (f"get the road dataset (Cheng et al. 2017) from {ROAD_URL} (it needs a Kaggle account), unzip it, "
             "and pass --data-dir to the folder holding Train/, Validation/ and Test/")
ROAD_SUBSETS = {"train": "train", "validation": "val", "val": "val", "test": "test"}
IMAGE_DIRS, MASK_DIRS = ("image", "images", "img", "imgs"), ("label", "labels", "mask", "masks", "gt")


def _child(folder: Path, names) -> Path | None:
    """The subfolder of ``folder`` whose name, in any capitalisation, is one of ``names``."""
    for p in sorted(folder.iterdir()) if folder.is_dir() else []:
        if p.is_dir() and p.name.lower() in names:
            return p
    return None


def _number(name: str) -> str | None:
    found = re.findall(r"\d+", Path(name).stem)
    return str(int(found[-1])) if found else None


def _pair_files(images: Path, masks: Path, key) -> list[tuple[Path, Path]]:
    """(image, mask) pairs whose ``key`` (number or stem) agrees; an image without a mask is an error."""
    by_key = {key(p.name): p for p in sorted(masks.iterdir()) if is_image(p)}
    pairs = []
    for image in sorted((p for p in images.iterdir() if is_image(p)), key=lambda p: p.name):
        mask = by_key.get(key(image.name))
        if mask is None:
            raise DataNotFoundError(f"{image} has no mask in {masks} (masks are matched by "
                                    f"{'number' if key is _number else 'file name without suffix'})")
        pairs.append((image, mask))
    return pairs


def _find_road_root(data_dir: Path) -> Path | None:
    """``data_dir`` or a folder up to two levels below it that holds Train/ (any capitalisation)."""
    candidates = [data_dir] + sorted(p for p in data_dir.glob("*") if p.is_dir()) + sorted(
        p for p in data_dir.glob("*/*") if p.is_dir())
    for folder in candidates:
        if _child(folder, ("train",)) is not None:
            return folder
    return None


@register_dataset("road", fixed_split=split_from_subsets)
def load_road(data_dir: Path | None, download: bool = False) -> DatasetIndex:
    """The Cheng road dataset: ``{Train,Validation,Test}/image/imageNNN.bmp`` with masks in
    ``label/NNN.bmp`` (255 = road; any two values work, see :mod:`samembed.datasets.masks`),
    matched by number; any capitalisation, one- or three-channel masks. Image order: train, val,
    test, each by number."""
    if download:
        raise DataNotFoundError(f"the road dataset cannot be downloaded automatically: {ROAD_HELP}")
    data_dir = data_dir if data_dir is not None else DEFAULT_DATA_ROOT / "road"
    root = _find_road_root(data_dir) if data_dir.is_dir() else None
    if root is None:
        raise DataNotFoundError(f"no road dataset in {data_dir}: {ROAD_HELP}")
    ids, masks, subsets = [], [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and p.name.lower() in ROAD_SUBSETS):
        images, labels = _child(folder, IMAGE_DIRS), _child(folder, MASK_DIRS)
        if images is None or labels is None:
            raise DataNotFoundError(f"{folder} needs an image/ and a label/ folder; {ROAD_HELP}")
        pairs = sorted(_pair_files(images, labels, _number), key=lambda pair: int(_number(pair[0].name) or 0))
        ids += [relative_id(img, root) for img, _ in pairs]
        masks += [relative_id(m, root) for _, m in pairs]
        subsets += [ROAD_SUBSETS[folder.name.lower()]] * len(pairs)
    order = sorted(range(len(ids)), key=lambda i: ("train", "val", "test").index(subsets[i]))  # stable
    ids, masks, subsets = [ids[i] for i in order], [masks[i] for i in order], [subsets[i] for i in order]
    if "train" not in subsets or "test" not in subsets:
        raise DataNotFoundError(f"{root} lacks a Train/ or Test/ folder with images; {ROAD_HELP}")
    return DatasetIndex("road", root, ids, np.zeros(len(ids), dtype=np.int64), SEGMENTATION_CLASSES,
                        mask_ids=masks, subsets=subsets, mask_encoding=scan_mask_encoding(root / m for m in masks))


@register_dataset("seg-folder")
def load_seg_folder(data_dir: Path | None, download: bool = False) -> DatasetIndex:
    """Your own binary segmentation data: ``DIR/images/`` and ``DIR/masks/``, matched by file name
    without suffix; masks hold two values, the higher one the foreground (0/1, 0/255, ...: see
    :mod:`samembed.datasets.masks`). No fixed split: use ``--split F``."""
    hint = "put images in DIR/images/ and masks with the same names in DIR/masks/, and pass --data-dir DIR"
    if download:
        raise UsageError("the 'seg-folder' dataset is your own data and cannot be downloaded; drop --download")
    if data_dir is None:
        raise UsageError(f"the 'seg-folder' dataset needs --data-dir: {hint}")
    images, masks = _child(data_dir, IMAGE_DIRS), _child(data_dir, MASK_DIRS)
    if images is None or masks is None:
        raise DataNotFoundError(f"no images/ and masks/ folders in {data_dir}: {hint}")
    pairs = _pair_files(images, masks, lambda name: Path(name).stem)
    if not pairs:
        raise DataNotFoundError(f"no images in {images}: {hint}")
    return DatasetIndex("seg-folder", data_dir, [relative_id(i, data_dir) for i, _ in pairs],
                        np.zeros(len(pairs), dtype=np.int64), SEGMENTATION_CLASSES,
                        mask_ids=[relative_id(m, data_dir) for _, m in pairs],
                        mask_encoding=scan_mask_encoding(m for _, m in pairs))
