"""``samembed extract``: run a frozen encoder once over every image of a dataset and store the
embeddings in the cache (docs/architecture.md, docs/cache-format.md), in three stages: a frozen
plan (:func:`plan_extraction`), the cache group it writes (:meth:`ExtractionPlan.open_group`),
and the encoding of pending shards (:func:`encode_shards`)."""

from __future__ import annotations

from ..cache.store import pending_shards, writer_lock
from ..datasets import DatasetIndex
from .distributed import extract_distributed, ranks_from_environment
from .encode import ExtractResult, check_runtime_options, encode_shards
from .plan import ExtractionPlan, plan_extraction
from .request import ExtractionRequest

__all__ = ["ExtractResult", "ExtractionPlan", "ExtractionRequest", "encode_shards", "extract", "plan_extraction"]


def extract(dataset: str | DatasetIndex | ExtractionRequest, **options) -> ExtractResult:
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
    rasters (docs/rasters.md). Options a dataset declares go to its loader (the ``scene`` dataset's
    ``chip_size`` and ``chip_overlap`` cut its rasters).
    ``prompt_features`` stores what the encoder's own mask decoder reads to answer prompts: the
    whole feature map and, for SAM 2, its two higher-resolution maps (docs/prompts.md).
    ``attention`` picks the encoder's attention kernels where it has a choice (SAM), ``GLOBAL[,WINDOWED]`` of ``auto``, ``sdpa``,
    ``flex`` (:mod:`samembed.encoders.attention`); recorded in the signature only where the numbers
    can differ from SDPA's (FlexAttention below float32). ``min_data_share`` (0-1; default: any
    valid pixel) is the share of an image's pixels that must hold data (not nodata, NaN or masked);
    an image under it, or with none, is blank: stored with ``ok = False``, zeros and a ``no data:
    ...`` error, counted in ``ExtractResult.blank`` and left out of training, evaluation and
    export (``CacheGroup.usable``). Given, it is part of the signature.
    ``name`` names the dataset in the cache
    (``extract("folder", name="tiles-2019")``: the store ``tiles-2019.zarr``, which later commands
    open with ``dataset="tiles-2019"``), so that several datasets of one kind sit side by side;
    letters, digits, '.', '_' and '-'.

    ``cache_dir`` is a folder or an object-store URL (``s3://bucket/prefix``, any fsspec URL).
    In a process launched by ``torchrun`` (``RANK`` and ``WORLD_SIZE`` set), every process
    encodes its own share of the pending shards on its own GPU (docs/distributed.md); rank 0
    returns the whole run's result."""
    request = dataset if isinstance(dataset, ExtractionRequest) else ExtractionRequest.of(dataset, **options)
    check_runtime_options(request.batch_size, request.workers)
    ranks = ranks_from_environment()
    runtime = dict(batch_size=request.batch_size, workers=request.workers, skip_bad=request.skip_bad,
                   progress=request.progress, compile=request.compile)
    if ranks is not None:
        return extract_distributed(ranks, request.plan_options(), overwrite=request.overwrite, **runtime)
    plan = plan_extraction(**request.plan_options())
    with writer_lock(plan.cache_dir, plan.index.name, "one process") as hold:
        group = plan.open_group(request.overwrite)
        return encode_shards(plan, group, pending_shards(group), check=hold.check if hold is not None else None,
                             **runtime)
