"""``folder``: any classification dataset laid out as ``DIR/<class>/<image>``."""

from __future__ import annotations

from pathlib import Path

from ..errors import DataNotFoundError, UsageError
from .base import DatasetIndex, index_class_folders
from .registry import register_dataset


@register_dataset("folder")
def load_folder(data_dir: Path | None, download: bool = False) -> DatasetIndex:
    if download:
        raise UsageError("the 'folder' dataset is your own data and cannot be downloaded; drop --download")
    if data_dir is None:
        raise UsageError("the 'folder' dataset needs --data-dir DIR, a folder with one subfolder of images per class")
    if not data_dir.is_dir():
        raise DataNotFoundError(f"{data_dir} is not a folder; pass --data-dir DIR with one subfolder of images per class")
    return index_class_folders(data_dir, "folder", "put each class's images in DIR/<class>/ and pass --data-dir DIR")
