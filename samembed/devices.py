"""Choosing the compute device and precision."""

from __future__ import annotations

import contextlib

import torch

from .errors import UsageError


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` is the first CUDA device when there is one, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise UsageError(f"unknown device '{device}'; use auto, cpu or cuda") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda was asked for but no CUDA device is visible; use --device cpu or auto")
    return dev


def compute_dtype(device: torch.device) -> torch.dtype:
    """bfloat16 autocast on CUDA (tensor cores), float32 on the CPU."""
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def autocast(device: torch.device):
    """bfloat16 autocast on CUDA, nothing on the CPU (training loops of heads and decoders)."""
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
