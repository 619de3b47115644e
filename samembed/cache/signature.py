"""The cache signature: everything that determines the stored numbers. It is written when a cache
group is created and compared on every open for writing; any difference is refused, naming the
first differing key, so embeddings made with other settings are never mixed in."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from ..datasets.base import DatasetIndex
from ..encoders.base import EncoderSpec
from ..version import __version__
from .layout import STORAGE_DTYPE

SIGNATURE_VERSION = 1


def package_versions() -> dict[str, str]:
    try:
        sam_version = version("segment-anything")
    except PackageNotFoundError:
        sam_version = "unknown"
    return {"samembed": __version__, "torch": version("torch").split("+")[0], "segment_anything": sam_version}


def run_versions() -> dict[str, str]:
    """Versions a training run records: the signature's, plus the libraries that train and score
    heads. (Not part of the cache signature, so upgrading them does not invalidate caches.)"""
    versions = package_versions()
    for name in ("torchvision", "timm", "scikit-learn", "numpy"):
        try:
            versions[name.replace("-", "_")] = version(name)
        except PackageNotFoundError:
            pass
    return versions


def make_signature(spec: EncoderSpec, index: DatasetIndex, grid: int, compute_dtype: str,
                   mask_size: int | None = None) -> dict:
    segmentation = {"task": "segmentation", "mask_size": mask_size, "mask_resize": "nearest-exact, then area"} \
        if index.task == "segmentation" else {}
    if index.task not in ("classification", "segmentation"):  # a task registered from outside samembed
        segmentation = {"task": index.task}
    return {
        **segmentation,
        "signature_version": SIGNATURE_VERSION,
        "encoder": spec.signature(),
        "grid": grid,
        "dtype": STORAGE_DTYPE,
        "compute_dtype": compute_dtype,
        "dataset": index.name,
        "dataset_fingerprint": index.fingerprint(),
        "num_images": len(index),
        "versions": package_versions(),
    }


def first_difference(stored, wanted, path: str = "") -> tuple[str, object, object] | None:
    """(dotted key, stored value, wanted value) of the first difference, or ``None``."""
    if isinstance(stored, dict) and isinstance(wanted, dict):
        for key in sorted(set(stored) | set(wanted)):
            diff = first_difference(stored.get(key), wanted.get(key), f"{path}.{key}" if path else key)
            if diff:
                return diff
        return None
    if isinstance(stored, (list, tuple)) and isinstance(wanted, (list, tuple)):
        stored, wanted = list(stored), list(wanted)
    return None if stored == wanted else (path, stored, wanted)
