"""Dataset registry: ``@register_dataset("name")`` on a loader makes ``samembed extract name`` work.

A loader takes ``(data_dir: Path | None, download: bool)`` and returns a :class:`DatasetIndex`.
A dataset that publishes a fixed split (EuroSAT's standard lists, road's folders) passes
``fixed_split``: ``(image_ids, subsets, data_dir, download) -> {"train": [...], "val": [...],
"test": [...]}`` (image ids per part; ``subsets`` is the cache's ``subset`` array, or ``None``),
and ``--split standard`` then works for it without any special case elsewhere."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import UsageError
from ..paths import SAFE_NAME
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


def get_dataset(name: str, source: str | None = None) -> Dataset:
    """The registered dataset ``name``, or for a named dataset the one it is an instance of (its
    ``source``: :func:`load_dataset`)."""
    return DATASETS.get(source or name)


def check_dataset_name(name: str, source: str) -> str:
    """``name`` for a named instance of the dataset ``source`` (``extract folder --name
    tiles-2019``), refused in one line unless it is a safe store name that no registered dataset
    has."""
    if not isinstance(name, str) or not SAFE_NAME.fullmatch(name) or name.lower().endswith(".zarr"):
        raise UsageError(f"--name must be letters, digits, '.', '_' and '-' (at most 64, starting with a letter or "
                         f"digit; it names the cache's store), not '{name}'")
    if name != source and name in available_datasets():
        raise UsageError(f"--name {name} is the name of a built-in dataset; choose another name for this {source} "
                         "dataset")
    return name


def load_dataset(name: str, data_dir: str | Path | None = None, download: bool = False, *,
                 source: str | None = None, **options) -> DatasetIndex:
    """Index dataset ``name`` (see :func:`available_datasets`); ``options`` are the dataset's own
    (the ``scene`` dataset's ``chip_size``, ...); ``None`` values are left out.

    A named dataset is an instance of a registered one under a name of its own (``samembed extract
    folder --name tiles-2019``: ``name="tiles-2019", source="folder"``), so that several sit side by
    side in one cache: it is indexed by ``source``'s loader, and its index carries ``name`` and
    records ``source`` in its ``options``, which is how later commands load it again by name."""
    if source is not None and source != name:
        check_dataset_name(name, source)
    elif name not in available_datasets() and SAFE_NAME.fullmatch(str(name)):
        raise UsageError(f"unknown dataset '{name}'; choose one of: {', '.join(available_datasets())} (data of your "
                         f"own: `samembed extract folder --name {name} --data-dir DIR`, or raster-folder, seg-folder, "
                         "scene)")
    dataset = DATASETS.get(source or name)
    options = {k: v for k, v in options.items() if v is not None}
    unknown = sorted(set(options) - set(dataset.options))
    if unknown:
        flags = ", ".join("--" + k.replace("_", "-") for k in unknown)
        takes = f"it takes {', '.join('--' + o.replace('_', '-') for o in dataset.options)}" if dataset.options else \
            "it takes none"
        raise UsageError(f"{flags} do(es) not apply to the {name} dataset ({takes})")
    index = dataset.load(Path(data_dir).expanduser() if data_dir is not None else None, download, **options)
    if source is not None and source != name:
        index = replace(index, name=name, options={**index.options, "source": source})
    return index
