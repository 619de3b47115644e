"""Classification datasets of multi-band rasters (GeoTIFFs): ``eurosat-ms`` (Sentinel-2, 13 bands,
uint16), ``eurosat-sar`` (Sentinel-1 VV and VH) and ``raster-folder`` (any GeoTIFFs in class
folders, any band count and dtype). Their images reach an encoder through a composite
(``--bands``, ``--stretch``: docs/rasters.md)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from ..download import check_recorded, download_file, download_recorded, verify
from ..errors import DataNotFoundError, UsageError, capped
from ..paths import DEFAULT_DATA_ROOT
from .base import DatasetIndex, index_class_folders
from .eurosat import CLASSES, NUM_IMAGES, extract_archive_into, standard_split
from .registry import register_dataset
from .scene import band_names, raster_info

RASTER_SUFFIXES = (".tif", ".tiff")
S2_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B08A", "B09", "B10", "B11", "B12")
S1_BANDS = ("VV", "VH")


@dataclass(frozen=True)
class RasterArchive:
    url: str
    filename: str
    md5: str | None  # None: published without a checksum, recorded at the first download
    top: str  # the archive's top folder


MS_ARCHIVE = RasterArchive(
    "https://hf.co/datasets/torchgeo/eurosat/resolve/1ce6f1bfb56db63fd91b6ecc466ea67f2509774c/EuroSATallBands.zip",
    "EuroSATallBands.zip", "5ac12b3b2557aa56e1826e981e8e200e", "ds")
MS_LAYOUT = "ds/images/remote_sensing/otherDatasets/sentinel_2/tif"
SAR_ARCHIVE = RasterArchive("https://huggingface.co/datasets/wangyi111/EuroSAT-SAR/resolve/main/EuroSAT-SAR.zip",
                            "EuroSAT-SAR.zip", None, "EuroSAT-SAR")


def _class_root(data_dir: Path, depth: int = 3) -> Path | None:
    """``data_dir`` or a folder below it (up to ``depth`` levels) that holds EuroSAT's class folders."""
    level = [data_dir]
    for _ in range(depth + 1):
        for folder in level:
            if folder.is_dir() and all((folder / c).is_dir() for c in CLASSES):
                return folder
        level = sorted(p for folder in level if folder.is_dir() for p in folder.iterdir()
                       if p.is_dir() and not p.name.startswith("."))
    return None


def _from_archive(data_dir: Path, archive: RasterArchive, download: bool, what: str) -> None:
    """Extract ``archive`` (downloaded with ``download`` if it is not in ``data_dir``), checked
    every time: against its md5, or (published without one) against the sha256 recorded at its
    first use."""
    path = data_dir / archive.filename
    if path.is_file() and archive.md5 is None:
        check_recorded(path)
    elif not (path.is_file() and verify(path, md5=archive.md5)):
        if not download:
            raise DataNotFoundError(f"{what} not found in {data_dir}; pass --data-dir DIR pointing at an extraction, or "
                                    f"add --download to fetch {archive.filename}")
        path = download_file(archive.url, path, md5=archive.md5) if archive.md5 else download_recorded(archive.url, path)
    extract_archive_into(path, data_dir, archive.top)


def _with_bands(index: DatasetIndex, expected: tuple[str, ...] | None, what: str) -> DatasetIndex:
    """``index`` with the band names and dtype of its first raster (``expected`` names, which
    its band count must match, or the file's descriptions, or numbers)."""
    info = raster_info(index.path(0))
    count, dtype = info.count, info.dtype
    if expected is not None and count != len(expected):
        raise DataNotFoundError(f"{index.path(0)} has {count} band(s) of {dtype}, but {what} has {len(expected)} "
                                f"({', '.join(expected)}); is --data-dir the right dataset?")
    if expected is None:
        expected = band_names(count, info.descriptions)
    return replace(index, bands=expected, dtype=dtype)


def _rasters_only(index: DatasetIndex, root: Path, hint: str) -> DatasetIndex:
    keep = [i for i, image_id in enumerate(index.image_ids) if image_id.lower().endswith(RASTER_SUFFIXES)]
    if not keep:
        raise DataNotFoundError(f"no GeoTIFF (.tif) images in the class folders under {root}; {hint}")
    if len(keep) == len(index):
        return index
    labels = index.labels[keep]
    return replace(index, image_ids=[index.image_ids[i] for i in keep], labels=labels)


@register_dataset("eurosat-ms", fixed_split=standard_split)
def load_eurosat_ms(data_dir: Path | None, download: bool = False) -> DatasetIndex:
    """EuroSAT's 13-band Sentinel-2 GeoTIFFs (27,000 x 13 x 64 x 64, uint16 reflectance x 10,000):
    the archive's nested layout (``ds/images/.../tif/<Class>/``) or the class folders directly;
    same classes, labels and standard split as ``eurosat``."""
    data_dir = data_dir if data_dir is not None else DEFAULT_DATA_ROOT / "eurosat-ms"
    index = _eurosat_rasters(data_dir, lambda: _class_root(data_dir / MS_LAYOUT, 0) or _class_root(data_dir),
                             MS_ARCHIVE, download, "EuroSAT-MS (the 13-band GeoTIFFs)", "eurosat-ms",
                             "pass --data-dir DIR pointing at the EuroSAT-MS GeoTIFFs")
    index = _with_bands(index, S2_BANDS, "EuroSAT-MS")
    index.info["complete"] = len(index) == NUM_IMAGES
    return index


@register_dataset("eurosat-sar")
def load_eurosat_sar(data_dir: Path | None, download: bool = False) -> DatasetIndex:
    """EuroSAT-SAR: the Sentinel-1 (VV, VH) version of EuroSAT, 27,000 dual-polarisation patches in
    EuroSAT's 10 class folders, found up to three levels below ``--data-dir``. The band dtype is
    read from the files, never assumed; a file that is not two bands is refused."""
    data_dir = data_dir if data_dir is not None else DEFAULT_DATA_ROOT / "eurosat-sar"
    index = _eurosat_rasters(data_dir, lambda: _class_root(data_dir), SAR_ARCHIVE, download, "EuroSAT-SAR",
                             "eurosat-sar", "pass --data-dir DIR pointing at the EuroSAT-SAR class folders")
    return _with_bands(index, S1_BANDS, "EuroSAT-SAR")


def _eurosat_rasters(data_dir: Path, find_root, archive, download: bool, what: str, name: str,
                     hint: str) -> DatasetIndex:
    """The rasters of a EuroSAT version in EuroSAT's class folders: found by ``find_root()`` in
    ``data_dir``, else in its downloaded (or, with ``download``, downloading) ``archive``."""
    root = find_root() if data_dir.is_dir() else None
    if root is None:
        _from_archive(data_dir, archive, download, what)
        root = find_root()
        if root is None:
            raise DataNotFoundError(f"{data_dir / archive.filename} holds no EuroSAT class folders; delete it and "
                                    "run again with --download")
    index = _rasters_only(index_class_folders(root, name, hint), root, hint)
    if index.class_names != CLASSES:
        raise DataNotFoundError(f"{root} holds class folders {capped(index.class_names, 12)}, not EuroSAT's; {hint}")
    return index


@register_dataset("raster-folder")
def load_raster_folder(data_dir: Path | None, download: bool = False) -> DatasetIndex:
    """Any classification dataset of GeoTIFFs in class folders (``DIR/<class>/<image>.tif``), any
    band count and dtype. Bands are named by the first file's band descriptions, else numbered."""
    if download:
        raise UsageError("the 'raster-folder' dataset is your own data and cannot be downloaded; drop --download")
    if data_dir is None or not data_dir.is_dir():
        raise UsageError("the 'raster-folder' dataset needs --data-dir DIR, a folder with one subfolder of GeoTIFFs "
                         "per class")
    hint = "put each class's GeoTIFFs in DIR/<class>/ and pass --data-dir DIR"
    index = _rasters_only(index_class_folders(data_dir, "raster-folder", hint), data_dir, hint)
    return _with_bands(index, None, "raster-folder")
