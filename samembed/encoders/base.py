"""The encoder contract and registry (docs/encoders.md).

An encoder is registered with ``@register_encoder("name")`` on a factory
``(model: str | None, checkpoint: Path | None, img_size: int | None) -> EncoderSpec``.
The spec is cheap (no weights loaded): extraction asks it for the cache signature first and
builds the network only when there is work to do. This module imports no torch, so listing
encoders costs nothing."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ..errors import UsageError
from ..plugins import BUILTIN, ENCODER_MODELS
from ..registry import Registry

if TYPE_CHECKING:
    import torch
    from torch import nn

    from .geometry import Geometry
    from .prompt_decoder import PromptDecoder


class EncoderSpec(ABC):
    """What extraction needs to know about an encoder, and how to build it."""

    name: str  # registry name, e.g. "sam"
    pooled_dims: dict[str, int]  # pooled vector name -> width, e.g. {"neck": 256, "trunk": 768}
    map_channels: int  # channels C of the feature map
    geometry: Geometry  # the input square and how images, points and masks map onto it
    # Bands of reflectance the encoder takes as stored (Prithvi: BLUE, GREEN, RED, ...), fed from a
    # raster's bands by a declared mapping; None: an 8-bit colour image (or a composite of bands).
    input_bands: tuple[str, ...] | None = None

    def prompt_maps(self) -> dict[str, tuple[int, int]] | None:
        """The maps, besides the whole feature map, that the encoder's own mask decoder reads to
        answer prompts: name -> (channels, stride in pixels of the input square), stored with
        ``--prompt-features`` (SAM 2: two higher-resolution maps; SAM: none, ``{}``). ``None``:
        samembed answers no prompts with this encoder."""
        return None

    @property
    def img_size(self) -> int:
        """Side of the square network input, pixels."""
        return self.geometry.img_size

    @property
    def map_size(self) -> int:
        """Side T of the (C, T, T) feature map, tokens."""
        return self.geometry.map_size

    @property
    @abstractmethod
    def key(self) -> str:
        """Short identifier of the weights, used in the cache group name (e.g. ``sam-vit_b``)."""

    @abstractmethod
    def signature(self) -> dict:
        """JSON-serialisable facts that determine the embeddings (weights hash, input size,
        preprocessing, architecture)."""

    def preprocessor(self) -> Geometry:
        """The per-image CPU transform, run in loader workers: (H, W, C) pixels -> ((C, S, S)
        canvas, (h, w) of the image on it); uint8 RGB, or float32 for ``geometry.pixels ==
        "float32"``. Picklable."""
        return self.geometry

    @abstractmethod
    def build(self, device: torch.device, prompt_maps: bool = False) -> nn.Module:
        """The frozen network, in eval mode on ``device``. Its forward takes
        ``images`` (B, C, S, S) canvases (uint8, or float32 as the geometry says), ``valid_hw``
        (B, 2) int64 and optionally ``data`` (B, 1, S, S) bool, and returns
        ``(pooled, feature_map)``: a dict name -> (B, D) float tensors and a (B, C, T, T) map;
        with ``prompt_maps`` (only asked of encoders whose :meth:`prompt_maps` names some) a third
        item, a dict name -> (B, c, s, s) of those maps."""

    def prompt_decoder(self, device: torch.device) -> PromptDecoder:
        """The encoder's own prompt encoder and mask decoder on cached maps
        (:class:`~samembed.encoders.prompt_decoder.PromptDecoder`); encoders whose
        :meth:`prompt_maps` is ``None`` have none."""
        raise UsageError(f"samembed answers no prompts with the {self.name} encoder")

    def choose_attention(self, setting: str, device: torch.device, stored: dict | None):
        """``--attention``: the attention kernels to run with, for encoders that have a choice (an
        :class:`~samembed.encoders.attention.AttentionPath`, set on the spec before :meth:`build`),
        given the signature ``stored`` of the group being resumed (or ``None``); ``None`` for the
        others, which refuse any setting but ``auto``."""
        from .attention import parse_attention

        if parse_attention(setting) != ("auto", "auto"):
            raise UsageError(f"--attention applies to encoders with a choice of attention kernels, not {self.name}")
        return None

    def run_log(self) -> dict:
        """Facts of how the network ran that go into the extraction's run log (not the signature)."""
        return {}


def input_size(img_size: int | None, default: int, multiple: int, encoder: str) -> int:
    """The network's input side: ``default`` when ``img_size`` is ``None``; otherwise a positive
    multiple of ``multiple`` (the patch or stride), refused in one line if not (0 included: it is
    not a way of asking for the default)."""
    if img_size is None:
        return default
    if img_size <= 0 or img_size % multiple:
        raise UsageError(f"--img-size must be a positive multiple of {multiple} for {encoder}, not {img_size}; "
                         f"leave it out for the default {default}")
    return img_size


EncoderFactory = Callable[[str | None, Path | None, int | None], EncoderSpec]
ENCODERS: Registry[EncoderFactory] = Registry("encoder", BUILTIN["encoder"])
register_encoder = ENCODERS.register
available_encoders = ENCODERS.names


def create_encoder(
    name: str = "sam", model: str | None = None, checkpoint: str | Path | None = None, img_size: int | None = None,
) -> EncoderSpec:
    """Resolve encoder ``name`` (see :func:`available_encoders`) without loading its weights."""
    return ENCODERS.get(name)(model, Path(checkpoint).expanduser() if checkpoint is not None else None, img_size)


def models_help() -> str:
    """``--model``'s help: every built-in encoder's models, the default first (from
    :data:`~samembed.plugins.ENCODER_MODELS`, without importing an encoder)."""
    listed = "; ".join(f"{name} {', '.join(m.models)}" for name, m in ENCODER_MODELS.items())
    random = [name for name, m in ENCODER_MODELS.items() if m.random_suffix]
    return (f"The encoder's model, its default first: {listed}; -random after a {', '.join(random[:-1])} or "
            f"{random[-1]} model: random weights (tests, timing). Official weights are downloaded once "
            "(docs/encoders.md).")


def img_size_help() -> str:
    """``--img-size``'s help: each built-in encoder's default input side."""
    sizes: dict[int, list[str]] = {}
    for name, m in ENCODER_MODELS.items():
        sizes.setdefault(m.img_size, []).append(name)
    each = "; ".join(f"{size} for {', '.join(names)}" for size, names in sorted(sizes.items(), reverse=True))
    return f"Encoder input side in pixels (default: the encoder's own: {each}; sam: a custom checkpoint's own)."
