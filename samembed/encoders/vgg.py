"""``vgg19``: torchvision's ImageNet VGG19, frozen: the study's transfer-learning comparison.

Cached like SAM: the last convolution stage (conv5_4 after its ReLU, before the last pooling),
512 x S/16 x S/16, as the map, and its average over the cells that cover the image as the
pooled vector ``gap``. Its own preprocessing: longest side resized to ``img_size`` (default 224,
VGG's), ImageNet normalisation, zero padding after normalising.

Weights: ``--model imagenet`` (default) downloads torchvision's ``VGG19_Weights.IMAGENET1K_V1``
(hash-checked, into torch's hub cache) where there is network; ``--checkpoint FILE`` loads a local
copy (a torchvision VGG19 state dict, or just its ``features.*`` tensors); ``--model random`` is a
randomly initialised VGG19 (seed 0) for tests and timing only."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torchvision.models import VGG19_Weights, vgg19

from ..download import is_fetch_error
from ..errors import CheckpointError
from ..hashing import sha256sum
from .weights import choose_model, local_checkpoint, read_checkpoint
from ..plugins import ENCODER_MODELS
from .base import EncoderSpec, input_size, register_encoder
from .pixels import PixelNormalise, masked_mean, token_mask
from .geometry import Geometry

PREPROCESSING = ("resize longest side to img_size (PIL bilinear); normalise ImageNet mean (123.675, 116.28, 103.53) "
                 "std (58.395, 57.12, 57.375) on 0-255; zero-pad bottom and right after normalising")
IMAGENET_WEIGHTS = VGG19_Weights.IMAGENET1K_V1


class VggEncoder(nn.Module):
    """(B, 3, S, S) uint8 + valid_hw (B, 2) -> ({"gap": (B, 512)}, conv5_4 map (B, 512, S/16, S/16))."""

    def __init__(self, features: nn.Sequential):
        super().__init__()
        self.features = features[:-1]  # without the last max-pooling
        self.normalise = PixelNormalise()

    def forward(self, images: torch.Tensor, valid_hw: torch.Tensor, data: torch.Tensor | None = None):
        size = images.shape[-1]
        fmap = self.features(self.normalise(images, valid_hw, data))
        cells = token_mask(valid_hw, fmap.shape[-1], size // fmap.shape[-1], data)
        return {"gap": masked_mean(fmap.float(), cells)}, fmap


class VggEncoderSpec(EncoderSpec):
    name = "vgg19"
    pooled_dims = {"gap": 512}
    map_channels = 512

    def __init__(self, weights: str, checkpoint: Path | None, img_size: int | None):
        self.weights, self.checkpoint = weights, checkpoint
        self.geometry = Geometry(input_size(img_size, ENCODER_MODELS["vgg19"].img_size, 16, "vgg19"), 16)
        self.sha256 = sha256sum(checkpoint) if checkpoint is not None else None

    @property
    def key(self) -> str:
        return f"vgg19-{self.sha256[:8]}" if self.sha256 else f"vgg19-{self.weights}"

    def signature(self) -> dict:
        weights = {"checkpoint_sha256": self.sha256} if self.sha256 else {
            "weights": "torchvision VGG19_Weights.IMAGENET1K_V1" if self.weights == "imagenet" else "random, seed 0"}
        return {"encoder": "vgg19", **weights, "img_size": self.img_size, "preprocessing": PREPROCESSING,
                "layer": "features[:-1] (conv5_4 + ReLU)"}

    def _state_dict(self) -> dict[str, torch.Tensor] | None:
        if self.checkpoint is not None:
            sd = read_checkpoint(self.checkpoint, "a torchvision VGG19 state dict")
            sd = {k: v for k, v in sd.items() if k.startswith("features.")} if isinstance(sd, dict) else {}
            if not sd:
                raise CheckpointError(f"{self.checkpoint} is not a VGG19 checkpoint (no features.* tensors); pass a "
                                      "torchvision VGG19 state dict such as vgg19-dcbb9e9d.pth")
            return sd
        if self.weights == "random":
            return None
        try:
            return IMAGENET_WEIGHTS.get_state_dict(progress=True, check_hash=True)
        except Exception as err:
            if not is_fetch_error(err):
                raise
            raise CheckpointError(f"cannot download VGG19's ImageNet weights ({type(err).__name__}: {err}); "
                                  "pass --checkpoint FILE with a local copy of "
                                  f"{IMAGENET_WEIGHTS.url.rsplit('/', 1)[-1]}") from None

    def build(self, device: torch.device, prompt_maps: bool = False) -> VggEncoder:
        torch.manual_seed(0)
        net = vgg19(weights=None)
        sd = self._state_dict()
        if sd is not None:
            missing = net.features.load_state_dict({k[len("features."):]: v for k, v in sd.items()}, strict=False)
            if missing.missing_keys or missing.unexpected_keys:
                raise CheckpointError(f"{self.checkpoint or 'the weights'} do not fit VGG19's convolution layers "
                                      f"(missing {missing.missing_keys[:3]}, unexpected {missing.unexpected_keys[:3]})")
        model = VggEncoder(net.features).to(device).eval()
        model.requires_grad_(False)
        return model


@register_encoder("vgg19")
def vgg19_encoder(model: str | None, checkpoint: Path | None, img_size: int | None) -> VggEncoderSpec:
    return VggEncoderSpec(choose_model("vgg19", model).name, local_checkpoint(checkpoint), img_size)
