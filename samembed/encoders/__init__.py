"""Frozen encoders: each module registers a factory that resolves an :class:`EncoderSpec`
(built-in ones are listed in :mod:`samembed.plugins` and imported when first used)."""

from ..lazy import lazy_attributes
from .base import EncoderSpec, available_encoders, create_encoder, register_encoder

__getattr__ = lazy_attributes(__name__, {
    "Geometry": ".geometry", "SamArch": ".sam_checkpoint", "infer_arch": ".sam_checkpoint",
    "load_encoder_state_dict": ".sam_checkpoint", "build_sam": ".tiny", "write_tiny_checkpoint": ".tiny",
})

__all__ = [
    "EncoderSpec", "Geometry", "SamArch", "available_encoders", "build_sam", "create_encoder", "infer_arch",
    "load_encoder_state_dict", "register_encoder", "write_tiny_checkpoint",
]
