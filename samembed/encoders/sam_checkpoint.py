"""SAM checkpoints in the official state-dict format: where to get them, how to read them, and
the architecture they describe.

A checkpoint describes itself (its tensors' shapes, as segment_anything/modeling/image_encoder.py makes them): the patch embedding gives the width and
patch size, the block count the depth, a block's ``rel_pos_h`` its head width (so the number of
heads) and whether it attends globally (2T-1 rows for a T-token grid) or in windows (2w-1 rows),
``pos_embed`` the native input size. So vit_b/l/h and fine-tuned or unusual variants all load."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..download import download_file
from ..errors import CheckpointError
from ..paths import user_cache_dir
from .weights import choose_model, local_checkpoint, read_checkpoint

BASE_URL = "https://dl.fbaipublicfiles.com/segment_anything/"


@dataclass(frozen=True)
class OfficialCheckpoint:
    filename: str
    size: int
    sha256: str

    @property
    def url(self) -> str:
        return BASE_URL + self.filename


OFFICIAL = {
    "vit_h": OfficialCheckpoint("sam_vit_h_4b8939.pth", 2_564_550_879,
                                "a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e"),
    "vit_l": OfficialCheckpoint("sam_vit_l_0b3195.pth", 1_249_524_607,
                                "3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622"),
    "vit_b": OfficialCheckpoint("sam_vit_b_01ec64.pth", 375_042_383,
                                "ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912"),
}
OFFICIAL_SHA256 = {c.sha256: name for name, c in OFFICIAL.items()}

# (embed_dim, depth, num_heads, global blocks) of the published variants.
VARIANTS = {
    "vit_b": (768, 12, 12, (2, 5, 8, 11)),
    "vit_l": (1024, 24, 16, (5, 11, 17, 23)),
    "vit_h": (1280, 32, 16, (7, 15, 23, 31)),
}


@dataclass(frozen=True)
class SamArch:
    """Hyper-parameters of a SAM image encoder (``segment_anything.modeling.ImageEncoderViT``)."""

    embed_dim: int
    depth: int
    num_heads: int
    global_attn_indexes: tuple[int, ...]
    window_size: int
    patch_size: int
    native_img_size: int
    mlp_ratio: float
    out_chans: int
    in_chans: int = 3
    qkv_bias: bool = True
    use_abs_pos: bool = True
    use_rel_pos: bool = True

    @property
    def variant(self) -> str:
        """``vit_b``/``vit_l``/``vit_h`` when the shape is a published one, else ``custom``."""
        for name, (dim, depth, heads, glob) in VARIANTS.items():
            if (self.embed_dim, self.depth, self.num_heads, self.global_attn_indexes) == (dim, depth, heads, glob):
                return name
        return "custom"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["global_attn_indexes"] = list(self.global_attn_indexes)
        return d


def resolve_checkpoint(model: str | None, checkpoint: Path | None) -> Path:
    """The checkpoint file to use: ``checkpoint`` if given, else the official file of ``model``
    (default vit_b), downloaded into the user cache folder on first use and verified by sha256."""
    if checkpoint is not None:
        return local_checkpoint(checkpoint)
    official = OFFICIAL[choose_model("sam", model, list(OFFICIAL)).name]
    return download_file(official.url, user_cache_dir() / "checkpoints" / official.filename, sha256=official.sha256)


def _torch_load(path: Path, mmap: bool):
    return read_checkpoint(path, f"a SAM checkpoint in the official segment-anything format, e.g. "
                                 f"{OFFICIAL['vit_b'].filename}", mmap=mmap)


def _prefixes_of(path: Path, anchor: str, mmap: bool) -> tuple[dict, list[str]]:
    """The checkpoint's state dict (unwrapped from ``model`` or ``state_dict``) and the key
    prefixes under which ``anchor`` occurs (``image_encoder.``, ``module.image_encoder.``, ...)."""
    obj = _torch_load(path, mmap)
    for nested in ("model", "state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(nested), dict):
            obj = obj[nested]
    if not isinstance(obj, dict):
        return {}, []
    return obj, [k[: -len(anchor)] for k in obj if isinstance(k, str) and k.endswith(anchor)]


def load_encoder_state_dict(path: Path, mmap: bool = True) -> dict[str, torch.Tensor]:
    """The image encoder's tensors, keys relative to the encoder (``patch_embed.proj.weight``, ...).

    Accepts a full SAM state dict (``image_encoder.*`` keys), one nested under ``model`` or
    ``state_dict``, one with an extra prefix (``module.``), or an encoder-only state dict. With
    ``mmap`` the tensors are not read until used, so inferring the architecture is cheap."""
    obj, prefixes = _prefixes_of(path, "patch_embed.proj.weight", mmap)
    anchor = "patch_embed.proj.weight"
    if not prefixes:
        raise CheckpointError(
            f"{path} is not a SAM checkpoint (no image_encoder.{anchor} tensor); pass a checkpoint in the "
            f"official segment-anything format, e.g. {OFFICIAL['vit_b'].filename}"
        )
    prefix = next((p for p in prefixes if "image_encoder" in p), prefixes[0])
    return {k[len(prefix):]: v for k, v in obj.items() if k.startswith(prefix) and torch.is_tensor(v)}


def load_prompt_and_mask_decoder(path: Path) -> dict[str, torch.Tensor]:
    """The ``prompt_encoder.*`` and ``mask_decoder.*`` tensors of a full SAM checkpoint (keys kept,
    any outer prefix such as ``module.`` removed)."""
    anchor = "mask_decoder.iou_token.weight"
    obj, prefixes = _prefixes_of(path, anchor, mmap=True)
    if any(p.endswith("sam_") for p in prefixes):  # SAM 2's sam_mask_decoder: another architecture
        raise CheckpointError(f"{path} is a SAM 2 checkpoint; SAM's mask decoder (the sam-vit decoder, prompts) needs "
                              "a SAM checkpoint in the segment-anything format")
    if not prefixes:
        raise CheckpointError(f"{path} has no SAM mask decoder (no {anchor} tensor); the sam-vit decoder needs a "
                              "full SAM checkpoint, as the official files are")
    prefix = prefixes[0]
    return {k[len(prefix):]: v for k, v in obj.items()
            if k.startswith(prefix) and k[len(prefix):].startswith(("prompt_encoder.", "mask_decoder.")) and torch.is_tensor(v)}


def infer_arch(sd: dict[str, torch.Tensor], source: str = "checkpoint") -> SamArch:
    """Read a :class:`SamArch` off an encoder state dict (see the module docstring)."""

    def need(key: str) -> torch.Tensor:
        if key not in sd:
            raise CheckpointError(f"{source} lacks the SAM image-encoder tensor {key}; it is not a complete SAM checkpoint")
        return sd[key]

    proj = need("patch_embed.proj.weight")  # (C, in_chans, P, P)
    embed_dim, in_chans, patch_size = proj.shape[0], proj.shape[1], proj.shape[2]
    block_ids = {int(k.split(".")[1]) for k in sd if k.startswith("blocks.")}
    depth = len(block_ids)
    if depth == 0 or block_ids != set(range(depth)):
        raise CheckpointError(f"{source} has transformer blocks {sorted(block_ids)}, not 0..n-1; it is not a SAM encoder")
    pos = sd.get("pos_embed")  # (1, T, T, C)
    use_rel_pos = "blocks.0.attn.rel_pos_h" in sd
    if use_rel_pos:
        rel_lengths = [need(f"blocks.{i}.attn.rel_pos_h").shape[0] for i in range(depth)]
        head_dim = sd["blocks.0.attn.rel_pos_h"].shape[1]
        num_heads = embed_dim // head_dim
        native_tokens = pos.shape[1] if pos is not None else (max(rel_lengths) + 1) // 2
        global_idx = tuple(i for i, n in enumerate(rel_lengths) if n == 2 * native_tokens - 1)
        windows = {(n + 1) // 2 for i, n in enumerate(rel_lengths) if i not in global_idx}
        if len(windows) > 1:
            raise CheckpointError(f"{source} has windowed blocks of several window sizes {sorted(windows)}; not supported")
        window_size = windows.pop() if windows else 0
    else:  # no relative tables: the layout can only come from the published variants
        known = [v for v in VARIANTS.values() if v[:2] == (embed_dim, depth)]
        if pos is None or not known:
            raise CheckpointError(f"{source} has no relative-position tables, so its attention layout cannot be inferred")
        _, _, num_heads, global_idx = known[0]
        native_tokens, window_size = pos.shape[1], 14
    return SamArch(
        embed_dim=embed_dim, depth=depth, num_heads=num_heads, global_attn_indexes=global_idx,
        window_size=window_size, patch_size=patch_size, native_img_size=native_tokens * patch_size,
        mlp_ratio=need("blocks.0.mlp.lin1.weight").shape[0] / embed_dim, out_chans=need("neck.0.weight").shape[0],
        in_chans=in_chans, qkv_bias="blocks.0.attn.qkv.bias" in sd, use_abs_pos=pos is not None,
        use_rel_pos=use_rel_pos,
    )
