"""``samembed extract``: run a frozen encoder once over every image of a dataset and store the
embeddings in the cache (docs/architecture.md, docs/cache-format.md), in three stages: a frozen
plan (:func:`plan_extraction`), the cache group it writes (:meth:`ExtractionPlan.open_group`),
and the encoding of pending shards (:func:`encode_shards`)."""

from __future__ import annotations

from pathlib import Path

from ..cache.store import pending_shards, writer_lock
from ..datasets import DatasetIndex
from ..paths import DEFAULT_CACHE_DIR
from .distributed import extract_distributed, ranks_from_environment
from .encode import ExtractResult, check_runtime_options, encode_shards
from .plan import ExtractionPlan, plan_extraction

__all__ = ["ExtractResult", "ExtractionPlan", "encode_shards", "extract", "plan_extraction"]


def extract(
    dataset: str | DatasetIndex, *, data_dir: str | Path | None = None, download: bool = False, encoder: str = "sam",
    model: str | None = None, checkpoint: str | Path | None = None, img_size: int | None = None,
    grid: int | None = None, batch_size: int | None = None, workers: int | None = None, device: str = "auto",
    cache_dir: str | Path = DEFAULT_CACHE_DIR, skip_bad: bool = False, shard_images: int | None = None,
    progress: bool = True, resize_on_device: bool | None = None, compile: bool = False, overwrite: bool = False,
    bands: str | None = None, stretch: str | None = None, chip_size: int | None = None, chip_overlap: int | None = None,
    prompt_features: bool = False,
    attention: str = "auto", min_data_share: float | None = None,
) -> ExtractResult:
    """Encode every image of ``dataset`` not yet in the cache and store its embeddings.

    Resumable: images already stored are skipped, so an interrupted run (Ctrl-C, SIGTERM, an
    error) keeps every image it encoded and the next run continues where it stopped; a run over
    a complete cache returns without loading the model. ``grid`` defaults to 16 (or the feature
    map side, if smaller; segmentation: the whole map). ``batch_size`` defaults to 16 on CUDA and
    4 on the CPU, ``workers`` to min(8, CPUs) on CUDA and 1 on the CPU. A corrupt image stops the
    run (:class:`~samembed.errors.CorruptImageError`) unless ``skip_bad``, which stores zeros with
    ``ok = False`` and its error in the ``error`` array. An image the encoder cannot take as it is
    (16-bit, ...) stops the run (:class:`~samembed.errors.ImageFormatError`) even with
    ``skip_bad``. ``overwrite`` deletes the group first and starts it over.
    ``resize_on_device`` (default: on CUDA) sends the decoded images to the device and resizes
    them there (torch bilinear) instead of in the loader workers (PIL, SAM's own); the two differ
    by rounding, so the choice is part of the signature. ``compile`` runs the encoder through
    ``torch.compile``. ``bands`` and ``stretch`` make the composite of multi-band or non-8-bit
    rasters (docs/rasters.md); ``chip_size`` and ``chip_overlap`` cut the ``scene`` dataset's rasters.
    ``prompt_features`` stores what the encoder's own mask decoder reads to answer prompts: the
    whole feature map and, for SAM 2, its two higher-resolution maps (docs/prompts.md).
    ``attention`` picks SAM's attention kernels, ``GLOBAL[,WINDOWED]`` of ``auto``, ``sdpa``,
    ``flex`` (:mod:`samembed.encoders.attention`); recorded in the signature only where the numbers
    can differ from SDPA's (FlexAttention below float32). ``min_data_share`` (0-1; default: any
    valid pixel) is the share of an image's pixels that must hold data (not nodata, NaN or masked);
    an image under it, or with none, is blank: stored with ``ok = False``, zeros and a ``no data:
    ...`` error, counted in ``ExtractResult.blank`` and left out of training, evaluation and
    export (``CacheGroup.usable``). Given, it is part of the signature.

    ``cache_dir`` is a folder or an object-store URL (``s3://bucket/prefix``, any fsspec URL).
    In a process launched by ``torchrun`` (``RANK`` and ``WORLD_SIZE`` set), every process
    encodes its own share of the pending shards on its own GPU (docs/distributed.md); rank 0
    returns the whole run's result."""
    options = dict(dataset=dataset, data_dir=data_dir, download=download, encoder=encoder, model=model,
                   checkpoint=checkpoint, img_size=img_size, grid=grid, device=device, cache_dir=cache_dir,
                   shard_images=shard_images, resize_on_device=resize_on_device, bands=bands, stretch=stretch,
                   dataset_options={"chip_size": chip_size, "chip_overlap": chip_overlap},
                   prompt_features=prompt_features, attention=attention, min_data_share=min_data_share)
    check_runtime_options(batch_size, workers)
    ranks = ranks_from_environment()
    if ranks is not None:
        return extract_distributed(ranks, options, batch_size=batch_size, workers=workers, skip_bad=skip_bad,
                                   progress=progress, compile=compile, overwrite=overwrite)
    plan = plan_extraction(**options)
    with writer_lock(plan.cache_dir, plan.index.name, "one process") as hold:
        group = plan.open_group(overwrite)
        return encode_shards(plan, group, pending_shards(group), batch_size=batch_size, workers=workers,
                             skip_bad=skip_bad, progress=progress, compile=compile,
                             check=hold.check if hold is not None else None)
