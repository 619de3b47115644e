"""Dataset registry: ``@register_dataset("name")`` on a loader makes ``samembed extract name`` work.

A loader takes ``(data_dir: Path | None, download: bool)`` and returns a :class:`DatasetIndex`.
A dataset that publishes a fixed split (EuroSAT's standard lists, road's folders) passes
``fixed_split``: ``(image_ids, subsets, data_dir, download) -> {"train": [...], "val": [...],
"test": [...]}`` (image ids per part; ``subsets`` is the cache's ``subset`` array, or ``None``),
and ``--split standard`` then works for it without any special case elsewhere."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError
from ..plugins import BUILTIN
from ..registry import Registry
from .base import DatasetIndex

DatasetLoader = Callable[[Path | None, bool], DatasetIndex]
FixedSplit = Callable[[Sequence[str], Sequence[str] | None, Path | None, bool], dict[str, list[str]]]


def split_from_subsets(image_ids: Sequence[str], subsets: Sequence[str] | None, data_dir: Path | None,
                       download: bool) -> dict[str, list[str]]:
    """The fixed split a dataset stores per image (road: ``train``, ``val``, ``test``)."""
    if subsets is None:
        raise UsageError("the cache holds no subset of each image; extract the dataset again")
    parts: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for image_id, subset in zip(image_ids, subsets):
        parts[str(subset)].append(str(image_id))
    return parts


@dataclass(frozen=True)
class Dataset:
    name: str
    load: DatasetLoader
    fixed_split: FixedSplit | None = None
    options: tuple[str, ...] = ()  # keyword options its loader takes (chip_size, ...)


DATASETS: Registry[Dataset] = Registry("dataset", BUILTIN["dataset"])
available_datasets = DATASETS.names


def register_dataset(name: str, fixed_split: FixedSplit | None = None,
                     options: tuple[str, ...] = ()) -> Callable[[DatasetLoader], DatasetLoader]:
    def decorate(load: DatasetLoader) -> DatasetLoader:
        DATASETS.add(name, Dataset(name, load, fixed_split, options))
        return load

    return decorate


def get_dataset(name: str) -> Dataset:
    return DATASETS.get(name)


def load_dataset(name: str, data_dir: str | Path | None = None, download: bool = False, **options) -> DatasetIndex:
    """Index dataset ``name`` (see :func:`available_datasets`); ``options`` are the dataset's own
    (the ``scene`` dataset's ``chip_size``, ...); ``None`` values are left out."""
    dataset = DATASETS.get(name)
    options = {k: v for k, v in options.items() if v is not None}
    unknown = sorted(set(options) - set(dataset.options))
    if unknown:
        flags = ", ".join("--" + k.replace("_", "-") for k in unknown)
        takes = f"it takes {', '.join('--' + o.replace('_', '-') for o in dataset.options)}" if dataset.options else \
            "it takes none"
        raise UsageError(f"{flags} do(es) not apply to the {name} dataset ({takes})")
    return dataset.load(Path(data_dir).expanduser() if data_dir is not None else None, download, **options)
