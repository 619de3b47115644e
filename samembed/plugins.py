"""The plugins that ship with samembed: for each registry, every built-in name and the module
that registers it (with ``@register_dataset``, ``@register_encoder``, ``@register_head``,
:func:`~samembed.experiments.kinds.register_kind` or :func:`~samembed.experiments.base.register_task`).

A registry imports the module the first time its name is asked for (:class:`~samembed.registry.Registry`),
so command-line help lists every name without importing torch. A new dataset, encoder, head,
head kind or task is one module that registers itself, and one line here (docs/architecture.md)."""

from __future__ import annotations

BUILTIN: dict[str, dict[str, str]] = {
    "dataset": {
        "eurosat": "samembed.datasets.eurosat",
        "folder": "samembed.datasets.folder",
        "road": "samembed.datasets.segmentation",
        "seg-folder": "samembed.datasets.segmentation",
        "eurosat-ms": "samembed.datasets.rasters",
        "eurosat-sar": "samembed.datasets.rasters",
        "raster-folder": "samembed.datasets.rasters",
        "scene": "samembed.datasets.scene",
    },
    "encoder": {
        "sam": "samembed.encoders.sam",
        "vgg19": "samembed.encoders.vgg",
        "dinov2": "samembed.encoders.dinov2",
        "dinov3": "samembed.encoders.dinov3",
        "sam2": "samembed.encoders.sam2",
        "prithvi": "samembed.encoders.prithvi",
    },
    "head/classification": {
        "linear": "samembed.heads.pooled",
        "mlp": "samembed.heads.pooled",
        "sam-conv": "samembed.heads.sam_conv",
        "sam-vit": "samembed.heads.sam_vit",
        "logreg": "samembed.heads.logreg",
        "knn": "samembed.heads.knn",
        "cnn": "samembed.heads.scratch",
        "resnet18": "samembed.heads.scratch",
    },
    "head/segmentation": {
        "sam-conv": "samembed.heads.seg_conv",
        "sam-vit": "samembed.heads.seg_vit",
        "unet": "samembed.heads.unet",
        "sam-1point": "samembed.prompting.zero_shot",
        "sam-3points": "samembed.prompting.zero_shot",
        "sam-5points": "samembed.prompting.zero_shot",
        "sam-centre": "samembed.prompting.zero_shot",
        "sam-box": "samembed.prompting.zero_shot",
        "sam-3points-3neg": "samembed.prompting.zero_shot",
    },
    "head kind": {
        "pooled": "samembed.classification.kinds",
        "grid": "samembed.classification.kinds",
        "classic": "samembed.classification.kinds",
        "scratch": "samembed.classification.kinds",
        "decoder": "samembed.segmentation.kinds",
        "raw": "samembed.segmentation.kinds",
        "zero-shot": "samembed.prompting.zero_shot",
    },
    "task": {
        "classification": "samembed.classification.task",
        "segmentation": "samembed.segmentation.task",
    },
}
