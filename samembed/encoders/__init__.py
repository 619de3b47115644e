"""Frozen encoders: each module registers a factory that resolves an :class:`EncoderSpec`."""

from . import dinov2, sam, vgg  # noqa: F401  (registration)
from .base import EncoderSpec, available_encoders, create_encoder, register_encoder
from .sam_checkpoint import SamArch, infer_arch, load_encoder_state_dict
from .tiny import build_sam, write_tiny_checkpoint

__all__ = [
    "EncoderSpec", "SamArch", "available_encoders", "build_sam", "create_encoder", "infer_arch",
    "load_encoder_state_dict", "register_encoder", "write_tiny_checkpoint",
]
