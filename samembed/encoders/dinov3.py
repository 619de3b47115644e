"""``dinov3``: DINOv3 ViT backbones (Siméoni et al. 2025) through timm, frozen, including the
ViT-L and ViT-7B pretrained on satellite images (SAT-493M).

Cached like ``dinov2``: the final (normalised) patch tokens as the (C, S/16, S/16) map, and two
pooled vectors: ``cls`` (the class token) and ``mean`` (the mean of the patch tokens that cover
the image; the 4 register tokens are left out of both). Preprocessing: longest side resized to
``img_size`` (default 224, a multiple of 16; positions are rotary, so any multiple works),
normalised with the weights' own statistics (ImageNet's for the web-image LVD-1689M weights,
SAT-493M's for the satellite ones), zero padding after normalising.

Weights: ``--checkpoint FILE`` loads a local file, the official ``dinov3_<variant>_pretrain_*.pth``
or a timm state dict (timm converts the keys); ``--model`` names the architecture it holds (default
``vits16``). Without a file, timm downloads the weights from the Hugging Face hub where there is
network (asked once, quietly: offline, one line names ``--checkpoint``; :mod:`samembed.encoders.hub`;
DINOv3's licence asks for acceptance on the hub first). ``-random`` after a model name
gives randomly initialised weights (seed 0), for tests and timing only."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import CheckpointError
from ..hashing import sha256sum
from .weights import choose_model, local_checkpoint, read_checkpoint
from ..plugins import ENCODER_MODELS
from .base import EncoderSpec, input_size, register_encoder
from .dinov2 import DinoV2Encoder
from .geometry import Geometry
from .hub import timm_pretrained
from .pixels import PIXEL_MEAN, PIXEL_STD, PixelNormalise

PATCH = 16
SAT_MEAN = (0.430 * 255, 0.411 * 255, 0.296 * 255)  # SAT-493M's statistics, as timm's pretrained config
SAT_STD = (0.213 * 255, 0.156 * 255, 0.143 * 255)


@dataclass(frozen=True)
class Variant:
    timm_name: str
    width: int
    tag: str  # timm's pretrained tag: lvd1689m (web images) or sat493m (satellite)

    @property
    def satellite(self) -> bool:
        return self.tag == "sat493m"


VARIANTS = {
    "vits16": Variant("vit_small_patch16_dinov3", 384, "lvd1689m"),
    "vits16plus": Variant("vit_small_plus_patch16_dinov3", 384, "lvd1689m"),
    "vitb16": Variant("vit_base_patch16_dinov3", 768, "lvd1689m"),
    "vitl16": Variant("vit_large_patch16_dinov3", 1024, "lvd1689m"),
    "vitl16-sat": Variant("vit_large_patch16_dinov3", 1024, "sat493m"),
    "vith16plus": Variant("vit_huge_plus_patch16_dinov3", 1280, "lvd1689m"),
    "vit7b16": Variant("vit_7b_patch16_dinov3", 4096, "lvd1689m"),
    "vit7b16-sat": Variant("vit_7b_patch16_dinov3", 4096, "sat493m"),
}


def official_to_timm(sd: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A DINOv3 state dict (official keys or timm's) in timm's keys, through timm's own converter.
    Zero ``qkv.bias`` tensors (the distilled models') are dropped for a timm model without query
    and value biases, as timm does, without its message per block."""
    from timm.models.eva import checkpoint_filter_fn

    has_bias = any(name.endswith("attn.q_bias") for name, _ in model.named_parameters())
    if not has_bias:
        sd = {k: v for k, v in sd.items() if not (k.endswith("attn.qkv.bias") and not torch.count_nonzero(v))}
    return checkpoint_filter_fn(sd, model)


def needs_qkv_bias(sd: dict[str, torch.Tensor]) -> bool:
    """Whether a DINOv3 state dict has query/value biases that are not all zero."""
    return any((k.endswith("attn.qkv.bias") or k.endswith("attn.q_bias")) and torch.count_nonzero(v)
               for k, v in sd.items())


class DinoV3EncoderSpec(EncoderSpec):
    name = "dinov3"

    def __init__(self, variant: str, random: bool, checkpoint: Path | None, img_size: int | None):
        self.variant, self.random, self.checkpoint = variant, random, checkpoint
        self.weights = VARIANTS[variant]
        self.geometry = Geometry(input_size(img_size, ENCODER_MODELS["dinov3"].img_size, PATCH, "dinov3"), PATCH)
        self.pooled_dims = {"cls": self.weights.width, "mean": self.weights.width}
        self.map_channels = self.weights.width
        self.sha256 = sha256sum(checkpoint) if checkpoint is not None else None
        self.mean, self.std = (SAT_MEAN, SAT_STD) if self.weights.satellite else (PIXEL_MEAN, PIXEL_STD)

    @property
    def key(self) -> str:
        weights = self.sha256[:8] if self.sha256 else ("random" if self.random else self.weights.tag)
        # the tag says web or satellite weights; a file's hash or "random" does not, the variant must
        variant = self.variant.removesuffix("-sat") if weights == self.weights.tag else self.variant
        return f"dinov3-{variant}-{weights}"

    @property
    def preprocessing(self) -> str:
        stats = "SAT-493M" if self.weights.satellite else "ImageNet"
        return (f"resize longest side to img_size (PIL bilinear); normalise {stats} mean "
                f"{tuple(round(v, 3) for v in self.mean)} std {tuple(round(v, 3) for v in self.std)} on 0-255; "
                "zero-pad bottom and right after normalising")

    def signature(self) -> dict:
        weights = {"checkpoint_sha256": self.sha256} if self.sha256 else {
            "weights": "random, seed 0" if self.random else f"timm {self.weights.timm_name}.{self.weights.tag}"}
        return {"encoder": "dinov3", "variant": self.variant, **weights, "img_size": self.img_size,
                "preprocessing": self.preprocessing,
                "tokens": "final norm; cls token, mean of valid patch tokens (registers left out)"}

    def _from_file(self) -> torch.nn.Module:
        import timm

        sd = read_checkpoint(self.checkpoint, f"an official dinov3_{self.variant.removesuffix('-sat')}_pretrain_*.pth")
        sd = sd.get("model", sd) if isinstance(sd, dict) else {}
        name = self.weights.timm_name + ("_qkvb" if needs_qkv_bias(sd) else "")
        vit = timm.create_model(name, pretrained=False, img_size=self.img_size, num_classes=0)
        try:
            result = vit.load_state_dict(official_to_timm(sd, vit), strict=False)
        except RuntimeError:  # a tensor of another shape: another variant
            result = None
        if result is None or result.missing_keys or result.unexpected_keys:
            raise CheckpointError(f"{self.checkpoint} is not a DINOv3 {self.variant} checkpoint (its tensors do not "
                                  f"fit {self.weights.timm_name}); name the variant it holds with --model")
        return vit

    def build(self, device: torch.device, prompt_maps: bool = False) -> DinoV2Encoder:
        import timm

        torch.manual_seed(0)
        w = self.weights
        if self.checkpoint is not None:
            vit = self._from_file()
        elif self.random:
            vit = timm.create_model(w.timm_name, pretrained=False, img_size=self.img_size, num_classes=0)
        else:
            vit = timm_pretrained(f"{w.timm_name}.{w.tag}", f"DINOv3 {self.variant} weights",
                                  "pass --checkpoint FILE with a local copy of the official "
                                  f"dinov3_{self.variant.removesuffix('-sat')}_pretrain_{w.tag}-*.pth",
                                  img_size=self.img_size, num_classes=0)
        model = DinoV2Encoder(vit, PATCH, PixelNormalise(self.mean, self.std)).to(device).eval()
        model.requires_grad_(False)
        return model


@register_encoder("dinov3")
def dinov3_encoder(model: str | None, checkpoint: Path | None, img_size: int | None) -> DinoV3EncoderSpec:
    choice = choose_model("dinov3", model, list(VARIANTS))
    return DinoV3EncoderSpec(choice.name, choice.random, local_checkpoint(checkpoint), img_size)
