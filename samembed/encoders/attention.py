"""Which attention kernel SAM's blocks run (:mod:`samembed.encoders.fast_attention`), chosen per
device: the ``--attention`` setting and what it resolves to.

``GLOBAL[,WINDOWED]``, each ``auto``, ``sdpa`` or ``flex`` (``flex`` alone: FlexAttention in the
global blocks, ``auto`` in the windowed ones). ``auto`` is FlexAttention in the global blocks on
CUDA where it runs there, and SDPA everywhere else: on the CPU FlexAttention runs but measured
slower than SDPA (docs/benchmarks.md). The windowed blocks' ``auto`` is :data:`WINDOWED_AUTO`
until a GPU measures FlexAttention faster there (``benchmarks/gpu_suite.py`` times both)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from ..errors import UsageError

KERNELS = ("sdpa", "flex")
WINDOWED_AUTO = "sdpa"  # the windowed blocks' automatic choice on CUDA; not yet measured on a GPU


@dataclass(frozen=True)
class AttentionPath:
    """The kernel of the global blocks and of the windowed blocks."""

    global_blocks: str = "sdpa"
    windowed_blocks: str = "sdpa"

    def __str__(self) -> str:
        return f"{self.global_blocks},{self.windowed_blocks}"

    @property
    def uses_flex(self) -> bool:
        return "flex" in (self.global_blocks, self.windowed_blocks)

    def signature_entry(self, compute_dtype: str) -> str | None:
        """The signature's ``attention`` value: only where the stored numbers can differ from the
        SDPA path's (every cache before issue 17), that is FlexAttention in a precision below
        float32; in float32 both equal segment_anything's within rounding (tested)."""
        return str(self) if self.uses_flex and compute_dtype != "float32" else None

    @classmethod
    def from_signature(cls, value: str | None) -> AttentionPath:
        """The path a cache was written with (no ``attention`` key: SDPA)."""
        return cls(*parse_attention(value)) if value else cls()


def parse_attention(setting: str) -> tuple[str, str]:
    """``GLOBAL[,WINDOWED]`` -> (global, windowed), each ``auto``, ``sdpa`` or ``flex``."""
    parts = [p.strip() for p in str(setting).split(",")]
    if len(parts) == 1:
        parts.append("auto")
    if len(parts) != 2 or any(p not in ("auto", *KERNELS) for p in parts):
        raise UsageError(f"--attention must be GLOBAL[,WINDOWED], each auto, sdpa or flex (e.g. auto, flex, "
                         f"flex,flex), not '{setting}'")
    return parts[0], parts[1]


def resolve_attention(setting: str, device: torch.device, head_dim: int, dtype: torch.dtype) -> AttentionPath:
    """The path for ``setting`` on ``device``: ``auto`` as the module says; ``flex`` asked for where
    FlexAttention does not run is refused in one line, with the reason."""
    glob, windowed = parse_attention(setting)
    # probing compiles FlexAttention: only where flex is asked for or auto must choose on CUDA
    probe = "flex" in (glob, windowed) or (device.type == "cuda" and "auto" in (glob, windowed))
    problem = flex_problem(device, head_dim, dtype) if probe else None
    if "flex" in (glob, windowed) and problem:
        raise UsageError(f"--attention {setting}: {problem}; use --attention sdpa")
    flex_auto = device.type == "cuda" and problem is None
    glob = glob if glob != "auto" else ("flex" if flex_auto else "sdpa")
    windowed = windowed if windowed != "auto" else (WINDOWED_AUTO if flex_auto else "sdpa")
    return AttentionPath(glob, windowed)


@functools.cache
def flex_problem(device: torch.device, head_dim: int, dtype: torch.dtype) -> str | None:
    """Why FlexAttention cannot run SAM's attention on ``device``, or ``None`` when it can: it is
    imported, compiled and run once on a small grid of the model's head size and checked against
    SDPA (memoised per device, head size and dtype)."""
    try:
        from torch.nn.attention.flex_attention import flex_attention  # noqa: F401  (torch >= 2.5)
    except ImportError:
        return f"torch {torch.__version__} has no FlexAttention"
    from .fast_attention import flex_rel_pos_attention, sdpa_rel_pos_attention

    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 2, 16 * 16, head_dim, generator=gen).to(device, dtype) for _ in range(3))
    rel_h, rel_w = (torch.randn(31, head_dim, generator=gen).to(device, dtype) for _ in range(2))
    try:
        with torch.inference_mode():
            got = flex_rel_pos_attention(q, k, v, (16, 16), rel_h, rel_w)
            want = sdpa_rel_pos_attention(q, k, v, (16, 16), rel_h, rel_w)
    except Exception as err:  # noqa: BLE001  compilers fail in many ways (no compiler, Triton, device)
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
        return f"FlexAttention does not run on {device.type} ({type(err).__name__}: {first})"
    tol = 1e-4 if dtype == torch.float32 else 5e-2
    if not torch.allclose(got.float(), want.float(), atol=tol, rtol=tol):
        return f"FlexAttention disagrees with SDPA on {device.type} (max difference {(got - want).abs().max():.2g})"
    return None
