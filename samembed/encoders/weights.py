"""Where an encoder's weights come from, resolved the same way for every encoder: ``--model``
checked against the models the encoder declares (:data:`~samembed.plugins.ENCODER_MODELS`, with
``-random`` for random weights where it declares that), a ``--checkpoint`` that must exist, and a
checkpoint file read safely (``weights_only``), each mistake one line naming the fix."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import CheckpointError, UsageError
from ..plugins import ENCODER_MODELS

RANDOM = "-random"


@dataclass(frozen=True)
class ModelChoice:
    """A ``--model`` resolved: the declared model's name, and whether its weights are random."""

    name: str
    random: bool = False


def choose_model(encoder: str, model: str | None, known: list[str] | tuple[str, ...] | None = None) -> ModelChoice:
    """``model`` (default: the encoder's first declared model) checked against ``known`` (default:
    the declared models); ``NAME-random`` where the encoder declares random weights."""
    declared = ENCODER_MODELS[encoder]
    known = tuple(known if known is not None else declared.models)
    name = model or declared.default
    random = declared.random_suffix and name.endswith(RANDOM)
    base = name.removesuffix(RANDOM) if random else name
    if base not in known:
        suffix = f" (add {RANDOM} for random weights)" if declared.random_suffix else ""
        raise UsageError(f"--model for {encoder} is one of {', '.join(known)}{suffix}, not '{name}'")
    return ModelChoice(base, random)


def local_checkpoint(checkpoint: str | Path | None) -> Path | None:
    """``--checkpoint`` as a path that exists, or ``None`` when none was given."""
    if checkpoint is None:
        return None
    path = Path(checkpoint).expanduser()
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found; check the path given to --checkpoint")
    return path


def read_checkpoint(path: Path, expected: str, mmap: bool = False):
    """The object in the checkpoint file ``path``, loaded with ``weights_only`` (a checkpoint
    never runs code); one line naming ``expected`` (what to pass instead) if it is not one.
    Files saved in the legacy (non-zip) format are read without ``mmap``."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as err:  # torch raises many types for a file that is not a checkpoint
        if mmap and "mmap" in str(err):
            return read_checkpoint(path, expected, mmap=False)
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint ({type(err).__name__}); pass "
                              f"{expected}") from None
