"""The first stage of an extraction: everything that decides what it stores, resolved and checked
before a model is built or a file written, frozen into an :class:`ExtractionPlan`."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import zarr

from ..cache.layout import default_shard_images, images_done
from ..cache.signature import make_signature
from ..cache.location import CacheLocation, cache_location
from ..cache.store import group_name, open_group_for_writing, stored_signature
from ..cache.usable import RULE_ATTR, blank_rule, check_min_data_share
from ..datasets import DatasetIndex, load_dataset
from ..datasets.bands import BandStack, band_stack
from ..datasets.composite import (SAMPLE_IMAGES, Composite, parse_composite, sample_images, stretch_from_signature,
                                  with_percentile_statistics)
from ..datasets.inputs import InputReader
from ..devices import compute_dtype, resolve_device
from ..encoders import EncoderSpec, create_encoder
from ..errors import UsageError
from ..paths import DEFAULT_CACHE_DIR
from ..plugins import DEFAULT_ENCODER

ON_DEVICE_RESIZE = "on the device: torch bilinear (antialiased), rounded to 0-255"
ON_DEVICE_RESIZE_FLOAT = "on the device: torch bilinear (antialiased), float32, not rounded"


@dataclass(frozen=True)
class ExtractionPlan:
    """One dataset through one encoder into one cache group. ``signature`` is what the stored
    numbers depend on (compared on every later run); ``attrs`` say where later stages find the
    dataset and the weights (not part of the signature: moving them does not invalidate the cache)."""

    index: DatasetIndex
    spec: EncoderSpec
    device: str  # "cpu", "cuda", "cuda:1"
    grid: int  # side of the pooled map stored per image
    mask_size: int | None  # side of the segmentation targets, or None
    shard_images: int
    resize_on_device: bool  # decoded images resized on the device instead of in loader workers
    signature: dict
    attrs: dict = field(default_factory=dict)
    cache_dir: CacheLocation = cache_location(DEFAULT_CACHE_DIR)  # a folder or an object-store URL
    composite: Composite | BandStack | None = None  # rasters: bands and stretch, or bands as stored (docs/rasters.md)
    # --prompt-features: maps besides the whole map that the encoder's own mask decoder reads,
    # name -> (channels, side) (SAM 2's two high-resolution maps; empty for SAM, and without the option)
    prompt_maps: dict[str, tuple[int, int]] = field(default_factory=dict)
    # images with a smaller share of pixels holding data are stored unusable (None: any valid pixel)
    min_data_share: float | None = None

    @property
    def group_name(self) -> str:
        """``<encoder key>@<input size>``, and ``+<composite>`` for a composite of rasters (or
        ``+<bands>`` for an encoder's stack of bands), so that several sit side by side."""
        name = group_name(self.spec.key, self.spec.img_size)
        return name + (f"+{self.composite.key()}" if self.composite is not None else "")

    @property
    def store(self) -> Path | str:
        """The dataset's store: a Path in a local folder, a URL on object storage."""
        return self.cache_dir.store_ref(self.index.name)

    def open_group(self, overwrite: bool = False) -> zarr.Group:
        """The second stage: the plan's group, created with every array or checked against the
        signature (:func:`~samembed.cache.store.open_group_for_writing`). Call under the store's
        writer lock. A group that stores no image yet records that its blank images are flagged
        at extraction (:data:`~samembed.cache.usable.RULE_ATTR`); one begun before keeps
        finding them at read time."""
        index, spec = self.index, self.spec
        group = open_group_for_writing(
            self.cache_dir, index.name, self.group_name, self.signature, class_names=index.class_names,
            image_ids=index.image_ids, labels=index.labels, pooled_dims=spec.pooled_dims,
            map_channels=spec.map_channels, grid=self.grid, shard_images=self.shard_images, mask_size=self.mask_size,
            subsets=index.subsets, attrs=self.attrs, overwrite=overwrite,
            data_share=InputReader(index, self.composite).may_lack_data, chips=index.chips,
            prompt_maps=self.prompt_maps,
        )
        if RULE_ATTR not in group.attrs and not images_done(group["done"][:], dict(group.attrs)).any():
            group.attrs[RULE_ATTR] = blank_rule(self.min_data_share)
        return group


def plan_extraction(
    dataset: str | DatasetIndex, *, data_dir: str | Path | None = None, download: bool = False, encoder: str = DEFAULT_ENCODER,
    model: str | None = None, checkpoint: str | Path | None = None, img_size: int | None = None,
    grid: int | None = None, device: str = "auto", cache_dir: str | Path = DEFAULT_CACHE_DIR,
    shard_images: int | None = None, resize_on_device: bool | None = None, bands: str | None = None,
    stretch: str | None = None, dataset_options: dict | None = None, prompt_features: bool = False,
    attention: str = "auto", min_data_share: float | None = None, name: str | None = None,
) -> ExtractionPlan:
    """Resolve the dataset, the encoder (without loading its weights), the grid and the signature.
    ``grid`` defaults to 16 (or the map side, if smaller) for classification and to the whole map
    for segmentation (decoders need SAM's full image embedding). ``resize_on_device`` defaults to
    on CUDA, for encoders with the SAM-style resize. ``bands`` and ``stretch`` make the composite of
    multi-band or non-8-bit rasters (:mod:`samembed.datasets.composite`); percentile statistics are
    computed once, then read back from the cache group. An encoder that takes bands of reflectance
    (``spec.input_bands``: Prithvi) gets them as stored through a declared mapping
    (:func:`~samembed.datasets.bands.band_stack`; ``bands`` overrides it, ``stretch`` is refused). ``dataset_options`` go to the dataset's
    loader (the ``scene`` dataset's ``chip_size``, ``chip_overlap``). ``prompt_features`` stores
    what the encoder's own prompt decoder reads (:func:`prompt_maps`): the whole map, and for SAM 2
    its two higher-resolution maps. ``attention`` picks SAM's attention kernels
    (:mod:`samembed.encoders.attention`); ``auto`` resumes a group with the kernels it was written
    with. ``min_data_share`` (0-1; default: any valid pixel) is the share of an image's pixels
    that must hold data for it to be usable; given, it is part of the signature. ``name`` names the
    dataset in the cache (its store, and ``--dataset`` of later commands;
    :func:`~samembed.datasets.registry.load_dataset`), so that several of one kind (``folder``) sit
    side by side."""
    min_data_share = check_min_data_share(min_data_share)
    if isinstance(dataset, DatasetIndex):
        index = dataset
    else:
        index = load_dataset(name or dataset, data_dir, download, source=dataset if name else None,
                             **(dataset_options or {}))
    spec = create_encoder(encoder, model=model, checkpoint=checkpoint, img_size=img_size)
    masks = index.mask_ids is not None  # per-pixel targets: their decoders read the whole map
    maps = prompt_maps(spec, grid) if prompt_features else {}
    whole = masks or prompt_features
    grid = grid if grid is not None else (spec.map_size if whole else min(16, spec.map_size))
    if not 1 <= grid <= spec.map_size:
        raise UsageError(f"--grid must be between 1 and {spec.map_size} (the feature map side), not {grid}")
    mask_size = 4 * grid if masks else None  # decoders upsample the grid 4x, as SAM's does
    dev = resolve_device(device)
    on_device = (dev.type == "cuda") if resize_on_device is None else resize_on_device
    location = cache_location(cache_dir)
    if spec.input_bands is not None:
        if stretch is not None:
            raise UsageError(f"{spec.name} takes reflectance as stored and normalises it itself; drop --stretch")
        composite = band_stack(spec.input_bands, index.bands, bands, spec.name, index.name)
    else:
        composite = _composite(index, bands, stretch, spec, location)
    signature = make_signature(spec, index, grid, str(compute_dtype(dev)).removeprefix("torch."), mask_size)
    if on_device:
        signature["resize"] = ON_DEVICE_RESIZE if spec.geometry.pixels == "uint8" else ON_DEVICE_RESIZE_FLOAT
    if maps:  # other arrays stored: another signature, so a group never mixes the two layouts
        signature["prompt_maps"] = {name: {"channels": c, "side": side, "dtype": "float16"}
                                    for name, (c, side) in maps.items()}
    if min_data_share is not None:  # only when given: groups made without it keep their signatures
        signature["min_data_share"] = min_data_share
    if isinstance(composite, BandStack):
        signature["bands"] = composite.signature()
    elif composite is not None:
        signature["composite"] = composite.signature()
    path = _attention(spec, attention, dev, group_name(spec.key, spec.img_size)
                      + (f"+{composite.key()}" if composite is not None else ""), index.name, location)
    if path is not None and path.signature_entry(signature["compute_dtype"]):
        signature["attention"] = path.signature_entry(signature["compute_dtype"])
    attrs = {"data_root": str(Path(index.root).resolve()), "answers_prompts": spec.prompt_maps() is not None}
    if index.options:
        attrs["dataset_options"] = dict(index.options)
    if getattr(spec, "checkpoint", None) is not None:
        attrs["checkpoint"] = str(Path(spec.checkpoint).resolve())
    return ExtractionPlan(
        index=index, spec=spec, device=str(dev), grid=grid, mask_size=mask_size,
        shard_images=shard_images or default_shard_images(spec.map_channels, grid, maps), resize_on_device=on_device,
        signature=signature, attrs=attrs, cache_dir=location, composite=composite, prompt_maps=maps,
        min_data_share=min_data_share,
    )


def _attention(spec: EncoderSpec, setting: str, dev, group: str, dataset: str, cache_dir: CacheLocation):
    """Resolve ``--attention`` with the encoder (:meth:`~samembed.encoders.base.EncoderSpec.choose_attention`),
    given the signature of the group being resumed."""
    return spec.choose_attention(setting, dev, stored_signature(cache_dir, dataset, group))


def prompt_maps(spec: EncoderSpec, grid: int | None) -> dict[str, tuple[int, int]]:
    """``--prompt-features``: the maps besides the whole feature map that ``spec``'s own mask
    decoder reads, name -> (channels, side at the input size); the whole map is stored too, so a
    smaller ``grid`` is refused, and so is an encoder whose prompts samembed does not answer."""
    maps = spec.prompt_maps()
    if maps is None:
        raise UsageError(f"--prompt-features is for encoders whose prompt decoder samembed runs (docs/prompts.md), "
                         f"not {spec.name}; drop it")
    if grid is not None and grid != spec.map_size:
        raise UsageError(f"--prompt-features stores the whole feature map ({spec.map_size} x {spec.map_size}); drop "
                         f"--grid {grid} or give --grid {spec.map_size}")
    return {name: (channels, spec.img_size // stride) for name, (channels, stride) in maps.items()}


def _composite(index: DatasetIndex, bands: str | None, stretch: str | None, spec: EncoderSpec,
               cache_dir: CacheLocation) -> Composite | None:
    """The composite of ``--bands`` and ``--stretch`` for the dataset's images, with its
    percentile statistics read from an existing cache group or else computed once."""
    if bands is None and stretch is None and index.bands is None:
        return None  # images read as they are; a non-8-bit one is refused in one line when read
    composite = parse_composite(bands, stretch, *index.raster_info())
    if composite is None or not composite.stretch.needs_statistics:
        return composite
    name = group_name(spec.key, spec.img_size) + f"+{composite.key()}"
    stored = (stored_signature(cache_dir, index.name, name) or {}).get("composite")
    if stored:
        composite = stretch_from_signature(composite, stored)
        if not composite.stretch.needs_statistics:
            return composite
    candidates = np.arange(len(index))
    if index.subsets is not None:  # a dataset with its own split: statistics of its training part
        candidates = candidates[np.asarray(index.subsets) == "train"]
    return with_percentile_statistics(composite, sample_images(SAMPLE_IMAGES, candidates), index)


def default_workers(device: str, processes: int = 1) -> int:
    """Decoding processes: min(8, CPUs) on CUDA, 1 on the CPU (where they share the cores); with
    ``processes`` extraction processes on the node (torchrun), each gets its share of the CPUs."""
    return min(8, max(1, (os.cpu_count() or 1) // processes)) if device.startswith("cuda") else 1
