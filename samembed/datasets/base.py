"""What every dataset hands to extraction: an index of image files with labels."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataNotFoundError, warn
from ..hashing import short_hash
from .masks import STANDARD_ENCODING, MaskEncoding

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp"}


@dataclass(frozen=True)
class DatasetIndex:
    """An ordered list of images with integer labels.

    ``image_ids`` are paths relative to ``root`` (POSIX separators); ``labels[i]`` indexes
    ``class_names``. The order is deterministic (sorted), so index ``i`` means the same image
    on every machine that holds the same files.

    A segmentation dataset also has ``mask_ids`` (the binary mask of each image, relative to
    ``root``; its labels are all 0), the ``mask_encoding`` its masks are read with
    (:mod:`samembed.datasets.masks`) and may have a fixed split: ``subsets[i]`` is ``train``,
    ``val`` or ``test``."""

    name: str
    root: Path
    image_ids: list[str]
    labels: np.ndarray  # (N,) int64
    class_names: list[str]
    info: dict = field(default_factory=dict)
    mask_ids: list[str] | None = None
    subsets: list[str] | None = None
    mask_encoding: MaskEncoding | None = None

    def __len__(self) -> int:
        return len(self.image_ids)

    @property
    def task(self) -> str:
        return "classification" if self.mask_ids is None else "segmentation"

    def path(self, i: int) -> Path:
        return self.root / self.image_ids[i]

    def mask_path(self, i: int) -> Path:
        return self.root / self.mask_ids[i]

    def fingerprint(self) -> str:
        """Hash of every image id, label and file size (and mask id and size, subset and mask
        encoding): changes when files are added, removed, relabelled or replaced by others of
        another size, or when masks change their values (0/1 instead of 0/255). Independent of
        where ``root`` is."""
        sizes = [self.path(i).stat().st_size for i in range(len(self))]
        parts = [self.class_names, self.image_ids, self.labels.tolist(), sizes]
        if self.mask_ids is not None:
            parts += [self.mask_ids, [self.mask_path(i).stat().st_size for i in range(len(self))], self.subsets]
            if self.mask_encoding not in (None, STANDARD_ENCODING):  # 0/255 hashes as before the encoding existed
                parts.append({"mask_values": list(self.mask_encoding.values)})
        return short_hash(parts)


def is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def _in_hidden_folder(path: Path, top: Path) -> bool:
    """Whether a folder between ``top`` and ``path`` is hidden (``.cache/``, ``.ipynb_checkpoints/``)."""
    return any(part.startswith(".") for part in path.relative_to(top).parts[:-1])


def relative_id(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` with POSIX separators; a name that is not valid UTF-8 (a
    file copied from another system) is refused, as the cache stores ids as UTF-8 text."""
    image_id = path.relative_to(root).as_posix()
    try:
        image_id.encode("utf-8")
    except UnicodeEncodeError:
        raise DataNotFoundError(f"the file name {str(path)!r} is not valid UTF-8; rename the file "
                                "(for example with `convmv -f latin1 -t utf8`) and run again") from None
    return image_id


def index_class_folders(root: Path, name: str, hint: str) -> DatasetIndex:
    """Index ``root/<class>/<image>`` with classes in alphabetical order (label = position).
    A class folder without images is left out, with a warning that names it."""
    class_dirs = sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name)
    class_names, ids, labels, empty = [], [], [], []
    for class_dir in class_dirs:
        files = sorted(  # by POSIX string: the same order on every platform
            (p for p in class_dir.rglob("*") if is_image(p) and not _in_hidden_folder(p, class_dir)),
            key=lambda p: p.relative_to(root).as_posix(),
        )
        if not files:
            empty.append(relative_id(class_dir, root))
            continue
        label = len(class_names)
        class_names.append(relative_id(class_dir, root))
        ids += [relative_id(p, root) for p in files]
        labels += [label] * len(files)
    if not ids:
        raise DataNotFoundError(f"no images found in class folders under {root}; {hint}")
    if empty:
        warn(f"{len(empty)} class folder(s) under {root} hold no images and are not classes of this dataset: "
             f"{', '.join(empty)}")
    return DatasetIndex(name, root, ids, np.asarray(labels, dtype=np.int64), class_names,
                        info={"empty_class_folders": empty} if empty else {})
