"""Reading the cache: which groups a store holds, and their arrays. A group is checked when it is
opened: damaged metadata is reported in one line naming the array, never trusted."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zarr

from ..errors import CacheError, SamembedError, UsageError, capped
from .integrity import CheckedArray, has_checksums, stored_blocks
from .layout import DONE_PER_IMAGE, WRITTEN_AT_CREATION, images_done
from .location import CacheLocation, cache_location
from .store import FORMAT, child_names, damage, extraction_runs
from .usable import NO_DATA, blank_at_read, blank_images, is_no_data


@dataclass
class CacheGroup:
    """A read-only view of one cache group (one dataset, one encoder at one input size).
    ``store`` is the dataset's store (a Path in a local folder, a URL on object storage);
    ``problem`` says why the group cannot be used (damaged metadata), or is ``None``."""

    store: Path | str
    name: str
    group: zarr.Group | None
    problem: str | None = None
    location: CacheLocation | None = None  # the folder or URL holding the store (default: the store's parent)

    @property
    def where(self) -> str:
        """``<store>/<group>``, as messages name the group."""
        return f"{self.store}/{self.name}"

    @property
    def store_name(self) -> str:
        """``<dataset>.zarr``."""
        return str(self.store).rstrip("/").rsplit("/", 1)[-1]

    def check(self) -> CacheGroup:
        """``self``, or one line saying that it is damaged and how to start over."""
        if self.problem:
            raise CacheError(f"the cache group {self.where} is damaged: {self.problem}; extract it again "
                             "with --overwrite (or delete that folder)")
        return self

    @property
    def attrs(self) -> dict:
        return dict(self.group.attrs)

    @property
    def signature(self) -> dict:
        return self.attrs["signature"]

    @property
    def dataset(self) -> str:
        return self.signature["dataset"]

    @property
    def class_names(self) -> list[str]:
        return list(self.attrs["class_names"])

    @property
    def task(self) -> str:
        """``classification`` or ``segmentation`` (a group with masks)."""
        return self.signature.get("task", "classification")

    @property
    def img_size(self) -> int | None:
        return self.signature.get("encoder", {}).get("img_size")

    @property
    def num_images(self) -> int:
        return int(self.attrs["num_images"])

    @property
    def arrays(self) -> dict[str, zarr.Array]:
        """The group's zarr arrays, for their shapes and types; read them with :meth:`array` or
        :meth:`read`, which check what they read."""
        return {name: array for name, array in self.group.arrays()}

    @property
    def generation(self) -> str:
        """What changes when the group is extracted again (``--overwrite``): its ``generation``
        attribute, or its creation time in groups made before it."""
        attrs = self.attrs
        return str(attrs.get("generation") or f"created {attrs.get('created', '?')}")

    def check_generation(self) -> None:
        """Raise one line if the group was extracted again (or removed) since it was opened: what
        was read from it may mix two generations, so nothing read may be recorded."""
        try:
            now = dict(zarr.open_group(store=self.group.store, path=self.group.path, mode="r").attrs)
            current = str(now.get("generation") or f"created {now.get('created', '?')}")
        except Exception:
            current = "removed"
        if current != self.generation:
            raise CacheError(f"the cache group {self.where} was extracted again while this command read it "
                             f"(generation {self.generation}, now {current}); nothing more is recorded from it: "
                             "run the command again once the extraction has finished")

    @property
    def checksums(self) -> bool:
        """Whether every chunk of every array carries a checksum (groups written before checksums
        do not: they are unverifiable)."""
        return all(has_checksums(a) for a in self.arrays.values())

    def array(self, name: str) -> CheckedArray:
        """The array ``name`` for reading part by part: every read verifies checksums and refuses
        missing chunks of stored images in one line (:mod:`samembed.cache.integrity`)."""
        try:
            array = self.group[name]
        except KeyError:
            raise UsageError(f"{self.where} has no array '{name}'; it has "
                             f"{', '.join(sorted(self.arrays))}") from None
        done = (lambda: np.zeros(array.shape[0], bool)) if name == "done" else self.images_done
        return CheckedArray(array, name, self.where, done, self.check_generation)

    def images_done(self) -> np.ndarray:
        """(N,) bool: which images are stored."""
        return images_done(self.read("done"), self.attrs)

    @property
    def progress(self) -> tuple[int, int]:
        """(images stored, images in the dataset)."""
        return int(self.images_done().sum()), self.num_images

    @property
    def complete(self) -> bool:
        stored, total = self.progress
        return stored == total

    def require_complete(self) -> CacheGroup:
        """``self``, or one line saying how to finish the extraction."""
        if not self.complete:
            stored, total = self.progress
            raise CacheError(f"the cache {self.where} is incomplete ({stored} of {total} images); run "
                             f"`samembed extract {self.dataset}` again with the same options to finish it")
        return self

    @property
    def skipped(self) -> list[dict]:
        """``{index, image_id, error}`` of every image skipped as unreadable (``--skip-bad``);
        blank images (:meth:`blank`) are not among them."""
        if self.attrs.get("done_unit") == DONE_PER_IMAGE:
            errors = self.read("error")
            bad = np.flatnonzero((errors != "") & ~is_no_data(errors) & ~self.read("ok") & self.images_done())
            ids = self.read("image_ids")
            return [{"index": int(i), "image_id": str(ids[i]), "error": str(errors[i])} for i in bad]
        return [entry for entry in self.attrs.get("skipped", [])  # groups made before the error array
                if not str(entry.get("error", "")).startswith(NO_DATA)]

    def blank(self) -> np.ndarray:
        """(N,) bool: the stored images that hold no data (no valid pixel, or under the group's
        ``--min-data-share``); in groups written before they were flagged at extraction, found
        from ``data_share`` (:mod:`samembed.cache.usable`)."""
        return blank_images(self.attrs, self.read, self.images_done())

    @property
    def blank_at_read(self) -> bool:
        """Whether :meth:`blank` finds blank images at read time (a group written before they were
        flagged at extraction) rather than reading the flags."""
        return blank_at_read(self.attrs)

    def usable(self) -> np.ndarray:
        """(N,) bool: the images that training, evaluation and export use: stored, readable
        (``ok``) and not blank. Every consumer of embeddings selects images with it."""
        return self.read("ok") & ~self.blank()

    def checkpoint(self, override: str | Path | None = None) -> Path | None:
        """The checkpoint this group was extracted with: ``override`` if given, else where the
        extraction found it; refused in one line if it is another checkpoint (its sha256 differs
        from the signature's). ``None`` when the group records none (its users say what is missing)."""
        from ..errors import CheckpointError
        from ..hashing import sha256sum

        checkpoint = override if override is not None else self.attrs.get("checkpoint")
        if checkpoint is None:
            return None
        wanted = self.signature.get("encoder", {}).get("checkpoint_sha256")
        if wanted is not None and Path(checkpoint).is_file() and sha256sum(Path(checkpoint)) != wanted:
            raise CheckpointError(f"{checkpoint} is not the checkpoint {self.name} was extracted with "
                                  f"(sha256 {wanted[:12]}...); pass that one with --checkpoint")
        return Path(checkpoint)

    @property
    def extraction_runs(self) -> list[dict]:
        """The log of every extraction run into this group, oldest first."""
        return extraction_runs(self.group)

    def read(self, name: str) -> np.ndarray:
        """The whole array ``name`` (``labels``, ``neck``, ``grid``, ...) in memory, checked
        (:meth:`array`); in arrays that are not float (where a missing chunk cannot read as NaN),
        a chunk file missing for a stored image is refused too."""
        array = self.array(name)
        data = array[:]
        if array.checked and data.dtype.kind != "f" and name != "done":
            self._check_files(array)
        return data

    def _check_files(self, array: CheckedArray) -> None:
        from .integrity import Damage, damage_error

        block = array.block_rows
        if array.name in WRITTEN_AT_CREATION:
            needed = set(range(-(-array.shape[0] // block)))
        else:
            needed = set((np.flatnonzero(self.images_done()) // block).tolist())
        missing = sorted(needed - stored_blocks(array.array))
        if missing:
            self.check_generation()
            b = missing[0]
            raise damage_error(self.where, Damage(array.name, b * block, min(array.shape[0], (b + 1) * block),
                                                  "a chunk is missing"))

    def nbytes_stored(self) -> int:
        """Bytes stored for this group (on disk, or on object storage)."""
        location = self.location or cache_location(Path(self.store).parent)
        return location.nbytes(self.store_name.removesuffix(".zarr"), self.name)


def _open_group(location: CacheLocation, dataset: str, root: zarr.Group, name: str) -> CacheGroup | None:
    """The group ``name`` of ``root``, checked; ``None`` for a node that is not a samembed group
    (or whose creation was interrupted before its signature)."""
    store = location.store_ref(dataset)
    try:
        group = root[name]
    except Exception as err:
        return CacheGroup(store, name, None, f"its metadata cannot be read ({type(err).__name__})", location)
    if not isinstance(group, zarr.Group) or "signature" not in group.attrs:
        return None
    return CacheGroup(store, name, group, damage(group), location)


def list_groups(cache_dir: str | Path | CacheLocation) -> list[CacheGroup]:
    """Every cache group under ``cache_dir`` (a folder or an object-store URL), sorted by store
    and name; damaged groups are listed with their ``problem``."""
    location = cache_location(cache_dir)
    groups = []
    for store_name in location.store_names():
        dataset = store_name.removesuffix(".zarr")
        try:
            root = location.open_store(dataset)
            if root.attrs.get("format") != FORMAT:
                continue
        except SamembedError:  # refused credentials and the like
            raise
        except Exception:  # not a zarr store: not ours
            continue
        for name in child_names(root):
            group = _open_group(location, dataset, root, name)
            if group is not None:
                groups.append(group)
    return groups


def matching_groups(cache_dir: str | Path, dataset: str | None, encoders: str | list[str]) -> list[CacheGroup]:
    """Every group of ``dataset`` (``None``: the cache's only dataset) named by ``encoders`` (names
    or prefixes, a list or comma-separated: ``sam-vit_b@1024`` matches every composite of vit_b at
    1024), each once, in the order asked; one that matches nothing is refused."""
    groups = _groups_of(cache_dir, dataset)
    dataset = groups[0].store_name.removesuffix(".zarr")
    wanted = [e.strip() for e in (encoders.split(",") if isinstance(encoders, str) else encoders) if e.strip()]
    found: dict[str, CacheGroup] = {}
    for pattern in wanted:
        matches = [g for g in groups if g.name == pattern] or [g for g in groups if g.name.startswith(pattern)]
        if not matches:
            raise UsageError(f"no cache group of '{dataset}' matches '{pattern}'; it has: "
                             f"{capped(g.name for g in groups)}")
        for g in matches:
            found.setdefault(g.name, g.check())
    return list(found.values())


def open_cache(cache_dir: str | Path, dataset: str | None = None, encoder: str | None = None) -> CacheGroup:
    """The group of ``dataset`` for ``encoder`` (a group name such as ``sam-vit_b@1024`` or its
    prefix); ``dataset`` may be left out when the cache holds one dataset, ``encoder`` when its
    store holds one group. Damaged groups are refused in one line."""
    groups = _groups_of(cache_dir, dataset)
    dataset = groups[0].store_name.removesuffix(".zarr")
    names = [g.name for g in groups]
    if encoder is not None:
        groups = [g for g in groups if g.name == encoder] or [g for g in groups if g.name.startswith(encoder)]
    if len(groups) != 1:
        what = "no" if not groups else "several"
        raise UsageError(f"{what} cache groups match for '{dataset}'; choose one with --encoder: {capped(names, 10)}")
    return groups[0].check()


def _groups_of(cache_dir: str | Path | CacheLocation, dataset: str | None) -> list[CacheGroup]:
    """The groups of ``dataset``'s store; ``None``: of the cache's only dataset. When there is no
    such store, or no single one, the line says which datasets the cache holds."""
    location = cache_location(cache_dir)
    every = list_groups(location)
    held = sorted({g.store_name.removesuffix(".zarr") for g in every})
    if dataset is None:
        if not held:
            raise CacheError(f"no cache in {location}; run `samembed extract DATASET` first, or point --cache-dir at "
                             "the cache")
        if len(held) > 1:
            raise UsageError(f"{location} holds several datasets ({capped(held, 10)}); choose one with --dataset")
        dataset = held[0]
    path = location.store_ref(dataset)
    groups = [g for g in every if g.store == path]
    if not groups:
        holds = f" (it holds {capped(held, 10)}: choose one with --dataset)" if held else ""
        raise CacheError(f"no cache for dataset '{dataset}' in {location}{holds}; run `samembed extract {dataset}` "
                         "first")
    return groups
