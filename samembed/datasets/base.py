"""What every dataset hands to extraction: an index of image files with labels."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataNotFoundError, capped, warn
from ..hashing import short_hash
from .images import Pixels, read_pixels, read_raster
from .masks import STANDARD_ENCODING, MaskEncoding, read_mask

Window = tuple[int, int, int, int]  # col_off, row_off, width, height, in pixels of a raster


@dataclass(frozen=True)
class Chips:
    """The chips of large rasters (scenes): chip ``i`` is the window ``windows[i]`` (col_off,
    row_off, width, height) of the raster ``scenes[i]`` (relative to the dataset's root).
    ``georef`` holds each raster's ``crs`` (WKT, or ``None``), affine ``transform`` (a, b, c, d,
    e, f: x = a col + b row + c, y = d col + e row + f), ``width`` and ``height``."""

    scenes: list[str]
    windows: np.ndarray  # (N, 4) int64
    georef: dict[str, dict]

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
    ``val`` or ``test``.

    A dataset of multi-band rasters names its ``bands`` and their ``dtype`` (EuroSAT-MS: B01 ...
    B12, uint16), from which ``--bands`` and ``--stretch`` make a composite. A dataset of
    ``chips`` cuts large rasters into windows; its ``options`` (chip size, overlap) are what
    indexes it again the same way."""

    name: str
    root: Path
    image_ids: list[str]
    labels: np.ndarray  # (N,) int64
    class_names: list[str]
    info: dict = field(default_factory=dict)
    mask_ids: list[str] | None = None
    subsets: list[str] | None = None
    mask_encoding: MaskEncoding | None = None
    bands: tuple[str, ...] | None = None
    dtype: str | None = None
    chips: Chips | None = None
    options: dict = field(default_factory=dict)
    declared_task: str | None = None  # a task registered outside samembed's two (else: masks decide)

    def __len__(self) -> int:
        return len(self.image_ids)

    @property
    def task(self) -> str:
        """The task its cache group is trained for: ``declared_task`` if the loader set one, else
        segmentation for a dataset with masks and classification for one without."""
        if self.declared_task is not None:
            return self.declared_task
        return "classification" if self.mask_ids is None else "segmentation"

    def path(self, i: int) -> Path:
        """The file image ``i`` is read from (a chip's scene)."""
        return self.root / (self.chips.scenes[i] if self.chips is not None else self.image_ids[i])

    def mask_path(self, i: int) -> Path:
        return self.root / self.mask_ids[i]

    def window(self, i: int) -> Window | None:
        return tuple(int(v) for v in self.chips.windows[i]) if self.chips is not None else None

    def pixels(self, i: int) -> Pixels:
        """Image ``i``'s pixels as stored (a chip: its window of the scene); rasters are read
        with rasterio directly."""
        if self.bands is not None:
            return read_raster(self.path(i), self.window(i))
        return read_pixels(self.path(i), self.window(i))

    def mask(self, i: int):
        """(H, W) bool foreground of image ``i``'s mask."""
        return read_mask(self.mask_path(i), self.mask_encoding or STANDARD_ENCODING, self.window(i))

    def raster_info(self) -> tuple[tuple[str, ...], str]:
        """(band names, dtype) of the dataset's images: declared by the dataset, else read off its
        first image (bands then named by number)."""
        if self.bands is not None and self.dtype is not None:
            return self.bands, self.dtype
        values = self.pixels(0).values
        return tuple(str(b) for b in range(1, values.shape[-1] + 1)), str(values.dtype)

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
             f"{capped(empty)}")
    return DatasetIndex(name, root, ids, np.asarray(labels, dtype=np.int64), class_names,
                        info={"empty_class_folders": empty} if empty else {})
