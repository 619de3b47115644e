"""``dinov2``: DINOv2 ViT-S/14 or ViT-B/14 (Oquab et al. 2023) through timm, frozen: the second
foundation model the study proposed comparing.

Cached like SAM: the final (normalised) patch tokens as the (C, S/14, S/14) map, and two pooled
vectors: ``cls`` (the class token) and ``mean`` (the mean of the patch tokens that cover the
image). Preprocessing: longest side resized to ``img_size`` (default 224, a multiple of 14),
ImageNet normalisation, zero padding after normalising.

Weights: ``--checkpoint FILE`` loads a local file, the official ``dinov2_vits14_pretrain.pth`` /
``dinov2_vitb14_pretrain.pth`` or a timm state dict (timm converts the keys and resamples the
position embedding to ``img_size``); without one, timm downloads the weights from the Hugging
Face hub where there is network (asked once, quietly: offline, one line names ``--checkpoint``;
:mod:`samembed.encoders.hub`). ``--model vits14-random`` / ``vitb14-random`` are randomly
initialised (seed 0), for tests and timing only."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..errors import CheckpointError, UsageError
from ..hashing import sha256sum
from ..plugins import ENCODER_MODELS
from .base import EncoderSpec, input_size, register_encoder
from .pixels import PixelNormalise, masked_mean, token_mask
from .geometry import Geometry
from .hub import timm_pretrained

TIMM_NAMES = {"vits14": "vit_small_patch14_dinov2", "vitb14": "vit_base_patch14_dinov2"}
WIDTHS = {"vits14": 384, "vitb14": 768}
PATCH = 14
PREPROCESSING = ("resize longest side to img_size (PIL bilinear); normalise ImageNet mean (123.675, 116.28, 103.53) "
                 "std (58.395, 57.12, 57.375) on 0-255; zero-pad bottom and right after normalising")


class DinoV2Encoder(nn.Module):
    """(B, 3, S, S) uint8 + valid_hw (B, 2) -> ({"cls": (B, C), "mean": (B, C)}, patch map (B, C, S/P, S/P)).
    A timm ViT with prefix tokens (class token first, then registers, if any); P = ``patch``."""

    def __init__(self, vit: nn.Module, patch: int = PATCH, normalise: PixelNormalise | None = None):
        super().__init__()
        self.vit = vit
        self.patch = patch
        self.normalise = normalise if normalise is not None else PixelNormalise()

    def forward(self, images: torch.Tensor, valid_hw: torch.Tensor, data: torch.Tensor | None = None):
        size = images.shape[-1]
        tokens = self.vit.forward_features(self.normalise(images, valid_hw, data))  # (B, prefix + T*T, C), final norm
        side = size // self.patch
        patches = tokens[:, self.vit.num_prefix_tokens:].transpose(1, 2).reshape(len(images), -1, side, side)
        cells = token_mask(valid_hw, side, self.patch, data)
        return {"cls": tokens[:, 0].float(), "mean": masked_mean(patches.float(), cells)}, patches


class DinoV2EncoderSpec(EncoderSpec):
    name = "dinov2"

    def __init__(self, variant: str, random: bool, checkpoint: Path | None, img_size: int | None):
        self.variant, self.random, self.checkpoint = variant, random, checkpoint
        self.geometry = Geometry(input_size(img_size, ENCODER_MODELS["dinov2"].img_size, PATCH, "dinov2"), PATCH)
        width = WIDTHS[variant]
        self.pooled_dims = {"cls": width, "mean": width}
        self.map_channels = width
        self.sha256 = sha256sum(checkpoint) if checkpoint is not None else None

    @property
    def key(self) -> str:
        weights = self.sha256[:8] if self.sha256 else ("random" if self.random else "lvd142m")
        return f"dinov2-{self.variant}-{weights}"

    def signature(self) -> dict:
        weights = {"checkpoint_sha256": self.sha256} if self.sha256 else {
            "weights": "random, seed 0" if self.random else f"timm {TIMM_NAMES[self.variant]}.lvd142m"}
        return {"encoder": "dinov2", "variant": self.variant, **weights, "img_size": self.img_size,
                "preprocessing": PREPROCESSING, "tokens": "final norm; cls token, mean of valid patch tokens"}

    def build(self, device: torch.device, prompt_maps: bool = False) -> DinoV2Encoder:
        import timm
        from timm.models.vision_transformer import checkpoint_filter_fn

        torch.manual_seed(0)
        name = TIMM_NAMES[self.variant]
        if self.checkpoint is None and not self.random:
            vit = timm_pretrained(f"{name}.lvd142m", f"DINOv2 {self.variant} weights",
                                  f"pass --checkpoint FILE with a local dinov2_{self.variant}_pretrain.pth",
                                  img_size=self.img_size, num_classes=0)
        else:
            vit = timm.create_model(name, pretrained=False, img_size=self.img_size, num_classes=0)
            if self.checkpoint is not None:
                try:
                    sd = torch.load(self.checkpoint, map_location="cpu", weights_only=True)
                    sd = checkpoint_filter_fn(sd.get("model", sd) if isinstance(sd, dict) else sd, vit)
                    missing = vit.load_state_dict(sd, strict=False)
                except Exception as err:
                    raise CheckpointError(f"{self.checkpoint} is not a DINOv2 {self.variant} checkpoint "
                                          f"({type(err).__name__}); pass dinov2_{self.variant}_pretrain.pth") from None
                if missing.missing_keys:
                    raise CheckpointError(f"{self.checkpoint} lacks DINOv2 {self.variant} tensors "
                                          f"({', '.join(missing.missing_keys[:3])}, ...); is it the right variant?")
        model = DinoV2Encoder(vit).to(device).eval()
        model.requires_grad_(False)
        return model


@register_encoder("dinov2")
def dinov2_encoder(model: str | None, checkpoint: Path | None, img_size: int | None) -> DinoV2EncoderSpec:
    name = model or ENCODER_MODELS["dinov2"].default
    variant, _, suffix = name.partition("-")
    if variant not in TIMM_NAMES or suffix not in ("", "random"):
        raise UsageError(f"--model for dinov2 is vits14 or vitb14 (add -random for random weights), not '{name}'")
    if checkpoint is not None and not Path(checkpoint).is_file():
        raise CheckpointError(f"{checkpoint} does not exist; pass a local DINOv2 weights file")
    return DinoV2EncoderSpec(variant, suffix == "random", checkpoint, img_size)
