"""The plugins that ship with samembed: for each registry, every built-in name and the module
that registers it (with ``@register_dataset``, ``@register_encoder``, ``@register_head``,
:func:`~samembed.experiments.kinds.register_kind` or :func:`~samembed.experiments.base.register_task`).

A registry imports the module the first time its name is asked for (:class:`~samembed.registry.Registry`),
so command-line help lists every name without importing torch. A new dataset, encoder, head,
head kind or task is one module that registers itself, and one line here (docs/architecture.md)."""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True)
class EncoderModels:
    """What a built-in encoder declares for help texts and study files, read without importing its
    module (which imports torch): its ``--model`` names, the default first; whether ``-random``
    after a name gives random weights of that shape (tests, timing); its default input side."""

    models: tuple[str, ...]
    img_size: int
    random_suffix: bool = False

    @property
    def default(self) -> str:
        return self.models[0]


DEFAULT_ENCODER = "sam"  # what `samembed extract` runs without --encoder
TASK_OF_UNTAGGED_RECORDS = "classification"  # run records written before records named their task

# The encoder modules take their defaults and the names they accept from here (tests check that
# their own tables agree), and `samembed extract --help` lists them.
ENCODER_MODELS: dict[str, EncoderModels] = {
    "sam": EncoderModels(("vit_b", "vit_l", "vit_h"), 1024),  # a custom checkpoint: its own input side
    "sam2": EncoderModels(("hiera_b+", "hiera_t", "hiera_s", "hiera_l"), 1024),
    "vgg19": EncoderModels(("imagenet", "random"), 224),
    "dinov2": EncoderModels(("vits14", "vitb14"), 224, random_suffix=True),
    "dinov3": EncoderModels(("vits16", "vits16plus", "vitb16", "vitl16", "vitl16-sat", "vith16plus", "vit7b16",
                             "vit7b16-sat"), 224, random_suffix=True),
    "prithvi": EncoderModels(("300m", "300m-tl", "600m", "600m-tl", "100m-tl"), 224, random_suffix=True),
}
