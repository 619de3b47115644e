"""``eurosat``: the RGB EuroSAT (Helber et al.), 27,000 64 x 64 JPEGs in 10 classes.

Accepts an existing extraction in either published layout (``2750/<Class>/`` from the archive
torchvision uses, ``EuroSAT_RGB/<Class>/`` from Zenodo); with ``download`` fetches the archive,
verifies its md5 and extracts it. The ladder follows torchgeo: extracted? archive? may download?
else one line that says what to do."""

from __future__ import annotations

import gzip
import lzma
import shutil
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from ..download import download_file, verify
from ..errors import DataNotFoundError, DownloadError, UsageError, capped
from ..paths import DEFAULT_DATA_ROOT
from .base import DatasetIndex, index_class_folders
from .registry import register_dataset

CLASSES = [
    "AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial",
    "Pasture", "PermanentCrop", "Residential", "River", "SeaLake",
]
NUM_IMAGES = 27_000


@dataclass(frozen=True)
class Archive:
    url: str
    filename: str
    md5: str
    layout: str  # top folder inside the archive


# Official home first (Zenodo record 7711810), then the copy torchvision pins.
ARCHIVES = [
    Archive("https://zenodo.org/records/7711810/files/EuroSAT_RGB.zip?download=1",
            "EuroSAT_RGB.zip", "f46e308c4d50d4bf32fedad2d3d62f3b", "EuroSAT_RGB"),
    Archive("https://huggingface.co/datasets/torchgeo/eurosat/resolve/"
            "c877bcd43f099cd0196738f714544e355477f3fd/EuroSAT.zip",
            "EuroSAT.zip", "c8fa014336c82ac7804f0398fcb19387", "2750"),
]
LAYOUTS = [a.layout for a in ARCHIVES]


def find_extraction(data_dir: Path) -> Path | None:
    """The folder holding the class folders, in any known layout, or ``None``."""
    for candidate in [data_dir / layout for layout in LAYOUTS] + [data_dir]:
        if candidate.is_dir() and all((candidate / c).is_dir() for c in CLASSES):
            return candidate
    return None


# What the archive modules raise for a file that is not the archive its name says (torchvision picks
# the reader by the file's suffix), or a damaged or truncated one.
UNREADABLE_ARCHIVE = (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, gzip.BadGzipFile,
                      NotImplementedError)


def extract_archive_into(archive: Path, data_dir: Path, layout: str) -> Path:
    """Extract into a scratch folder and move the result in place, so an interrupted
    extraction never looks like a complete one."""
    from torchvision.datasets.utils import extract_archive

    scratch = data_dir / f".extracting-{layout}"
    shutil.rmtree(scratch, ignore_errors=True)
    try:
        extract_archive(str(archive), str(scratch))
    except UNREADABLE_ARCHIVE as err:  # a tar under a .zip name, a truncated or damaged archive
        shutil.rmtree(scratch, ignore_errors=True)
        kind = archive.suffix.lstrip(".") or "known"
        raise DataNotFoundError(f"{archive} is not a readable {kind} archive ({type(err).__name__}: "
                                f"{' '.join(str(err).split())[:80]}); delete it and run again with --download") from None
    inner = scratch / layout
    if not inner.is_dir():
        shutil.rmtree(scratch, ignore_errors=True)
        raise DataNotFoundError(f"{archive} does not contain {layout}/; delete it and run again with --download")
    try:
        inner.rename(data_dir / layout)
    except OSError as err:  # an incomplete data_dir/<layout> from an earlier attempt is in the way
        raise DataNotFoundError(
            f"cannot extract {archive}: {data_dir / layout} already exists but is incomplete; "
            "delete it and run again"
        ) from err
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return data_dir / layout


def _missing(data_dir: Path) -> DataNotFoundError:
    return DataNotFoundError(
        f"EuroSAT not found in {data_dir} (looked for {' or '.join(l + '/<Class>/' for l in LAYOUTS)}); "
        "pass --data-dir DIR pointing at an extraction, or add --download to fetch it (about 90 MB)"
    )


def standard_split(image_ids, subsets, data_dir: Path | None, download: bool) -> dict[str, list[str]]:
    """Neumann et al.'s standard split of EuroSAT as image ids per part. The lists name files by
    stem (``AnnualCrop_1.tif``), so they serve every version of EuroSAT (RGB ``.jpg``, ...)."""
    lists = standard_split_lists(data_dir, download)
    by_stem = {_stem(i): i for i in image_ids}
    parts = {}
    for part, names in lists.items():
        missing = [n for n in names if _stem(n) not in by_stem]
        if missing:
            raise UsageError(f"{len(missing)} images of the standard {part} list are not in this dataset (first: "
                             f"{missing[0]}); the cache holds another dataset or version")
        parts[part] = [by_stem[_stem(n)] for n in names]
    return parts


def _stem(name: str) -> str:
    return name.strip().rsplit("/", 1)[-1].rsplit(".", 1)[0]


@register_dataset("eurosat", fixed_split=standard_split)
def load_eurosat(data_dir: Path | None, download: bool = False) -> DatasetIndex:
    data_dir = data_dir if data_dir is not None else DEFAULT_DATA_ROOT / "eurosat"
    root = find_extraction(data_dir)
    if root is None:
        root = _from_archive(data_dir, download)
    index = index_class_folders(root, "eurosat", "pass --data-dir DIR pointing at a EuroSAT extraction")
    if index.class_names != CLASSES:
        raise DataNotFoundError(
            f"{root} holds class folders {capped(index.class_names, 12)}, not EuroSAT's {', '.join(CLASSES)}; "
            "use --data-dir to point at EuroSAT, or the 'folder' dataset for other data"
        )
    index.info["complete"] = len(index) == NUM_IMAGES
    return index


def _from_archive(data_dir: Path, download: bool) -> Path:
    for archive in ARCHIVES:  # an archive already on disk (downloaded by hand)?
        path = data_dir / archive.filename
        if path.is_file() and verify(path, md5=archive.md5):
            return extract_archive_into(path, data_dir, archive.layout)
    if not download:
        raise _missing(data_dir)
    errors = []
    for archive in ARCHIVES:
        try:
            path = download_file(archive.url, data_dir / archive.filename, md5=archive.md5)
        except DownloadError as err:
            errors.append(str(err))
            continue
        return extract_archive_into(path, data_dir, archive.layout)
    raise DownloadError(f"every EuroSAT mirror failed: {errors[-1]}")


# Neumann et al. (2019) train/val/test lists (16,200 / 5,400 / 5,400), pinned to a revision:
# older revisions hold 100-image files under the same names.
SPLIT_URL = "https://hf.co/datasets/torchgeo/eurosat/resolve/1ce6f1bfb56db63fd91b6ecc466ea67f2509774c/eurosat-{}.txt"
SPLIT_MD5 = {
    "train": "908f142e73d6acdf3f482c5e80d851b1",
    "val": "95de90f2aa998f70a3b2416bfe0687b4",
    "test": "7ae5ab94471417b6e315763121e67c5f",
}


def standard_split_lists(data_dir: Path | None, download: bool = False) -> dict[str, list[str]]:
    """The standard EuroSAT split as file names per part, from ``<data_dir>/eurosat-{part}.txt``
    (downloaded and md5-verified with ``download``)."""
    data_dir = data_dir if data_dir is not None else DEFAULT_DATA_ROOT / "eurosat"
    lists = {}
    for part, md5 in SPLIT_MD5.items():
        path = data_dir / f"eurosat-{part}.txt"
        if not (path.is_file() and verify(path, md5=md5)):
            if not download:
                raise DataNotFoundError(
                    f"the standard EuroSAT split file {path} is missing; add --download to fetch it, "
                    "or pass --data-dir DIR holding eurosat-train.txt, eurosat-val.txt and eurosat-test.txt"
                )
            download_file(SPLIT_URL.format(part), path, md5=md5)
        lists[part] = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    return lists
