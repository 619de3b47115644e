"""``sam``: the frozen Segment Anything image encoder, from any SAM-format checkpoint, at any
input size that is a multiple of the patch size."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from segment_anything.modeling import ImageEncoderViT
from torch import nn

from ..devices import compute_dtype
from ..errors import UsageError
from ..hashing import sha256sum
from .base import EncoderSpec, input_size, register_encoder
from .attention import AttentionPath, parse_attention, resolve_attention
from .fast_attention import use_fast_attention
from .geometry import Geometry
from .pixels import PIXEL_MEAN, PIXEL_STD, PixelNormalise, masked_mean, token_mask
from .sam_checkpoint import OFFICIAL_SHA256, SamArch, infer_arch, load_encoder_state_dict, resolve_checkpoint

PREPROCESSING = (
    "segment_anything ResizeLongestSide (PIL bilinear) to img_size; normalise mean "
    f"{PIXEL_MEAN} std {PIXEL_STD} on 0-255; zero-pad bottom and right after normalising"
)


class SamImageEncoder(nn.Module):
    """segment_anything's ``ImageEncoderViT`` with SAM's normalisation and padding in front, and
    the pooled vectors we cache behind it."""

    def __init__(self, vit: ImageEncoderViT):
        super().__init__()
        self.vit = vit
        self.normalise = PixelNormalise()

    def forward(self, images: torch.Tensor, valid_hw: torch.Tensor,
                data: torch.Tensor | None = None) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """``images`` (B, 3, S, S) uint8 canvases (:meth:`Geometry.canvas`), ``valid_hw`` (B, 2),
        ``data`` (B, 1, S, S) bool: the pixels that hold data, for rasters with nodata.

        Returns ``{"neck": (B, 256), "trunk": (B, embed_dim)}`` (float32, averaged over the
        tokens that cover the image and hold data, not the padding) and the neck map
        (B, 256, S/16, S/16)."""
        size = images.shape[-1]
        x = self.normalise(images, valid_hw, data)  # SAM pads with zeros after normalising
        t = self.vit.patch_embed(x)  # (B, T, T, C)
        if self.vit.pos_embed is not None:
            t = t + self.vit.pos_embed
        for block in self.vit.blocks:
            t = block(t)
        trunk = t.permute(0, 3, 1, 2)  # (B, C, T, T)
        neck = self.vit.neck(trunk)  # (B, 256, T, T)
        tokens = token_mask(valid_hw, trunk.shape[-1], size // trunk.shape[-1], data)
        pooled = {"neck": masked_mean(neck.float(), tokens), "trunk": masked_mean(trunk.float(), tokens)}
        return pooled, neck


def resize_for_input(sd: dict[str, torch.Tensor], arch: SamArch, img_size: int) -> dict[str, torch.Tensor]:
    """Adapt native-size tensors to ``img_size``: ``pos_embed`` resampled bicubically (as timm's
    ``resample_abs_pos_embed``), global blocks' relative tables linearly (exactly what
    segment_anything's ``get_rel_pos`` would do at run time)."""
    tokens = img_size // arch.patch_size
    if img_size == arch.native_img_size:
        return sd
    sd = dict(sd)
    if "pos_embed" in sd:
        pos = sd["pos_embed"].float().permute(0, 3, 1, 2)  # (1, C, T, T)
        pos = F.interpolate(pos, size=(tokens, tokens), mode="bicubic", antialias=True, align_corners=False)
        sd["pos_embed"] = pos.permute(0, 2, 3, 1).contiguous()
    for i in arch.global_attn_indexes:
        for axis in ("h", "w"):
            key = f"blocks.{i}.attn.rel_pos_{axis}"
            if key in sd:
                rel = sd[key].float().t().unsqueeze(0)  # (1, head_dim, L)
                sd[key] = F.interpolate(rel, size=2 * tokens - 1, mode="linear").squeeze(0).t().contiguous()
    return sd


class SamEncoderSpec(EncoderSpec):
    name = "sam"
    # The attention kernels ``build`` uses: SDPA unless set (extraction resolves ``--attention``
    # for the device, :mod:`samembed.encoders.attention`).
    attention: AttentionPath = AttentionPath()

    def __init__(self, checkpoint: Path, img_size: int | None, requested_model: str | None = None):
        self.checkpoint = checkpoint
        self.arch = infer_arch(load_encoder_state_dict(checkpoint, mmap=True), source=str(checkpoint))
        if requested_model and self.arch.variant not in (requested_model, "custom"):
            raise UsageError(
                f"--model {requested_model} was given but {checkpoint} holds a {self.arch.variant}; drop --model or fix it"
            )
        self.geometry = Geometry(input_size(img_size, self.arch.native_img_size, self.arch.patch_size, "sam"),
                                 self.arch.patch_size)
        self.sha256 = sha256sum(checkpoint)
        self.pooled_dims = {"neck": self.arch.out_chans, "trunk": self.arch.embed_dim}
        self.map_channels = self.arch.out_chans

    @property
    def head_dim(self) -> int:
        return self.arch.embed_dim // self.arch.num_heads

    @property
    def key(self) -> str:
        official = OFFICIAL_SHA256.get(self.sha256)
        return f"sam-{official}" if official else f"sam-{self.arch.variant}-{self.sha256[:8]}"

    def signature(self) -> dict:
        return {
            "encoder": self.name, "variant": self.arch.variant, "checkpoint_sha256": self.sha256,
            "img_size": self.img_size, "preprocessing": PREPROCESSING, "arch": self.arch.to_dict(),
        }

    def prompt_maps(self) -> dict[str, tuple[int, int]]:
        """SAM's mask decoder reads the image embedding alone: nothing besides the whole map."""
        return {}

    def build_vit(self) -> ImageEncoderViT:
        """segment_anything's ``ImageEncoderViT`` at ``img_size`` with the checkpoint's weights."""
        a = self.arch
        with torch.device("meta"):  # no memory is allocated until the weights are assigned
            vit = ImageEncoderViT(
                img_size=self.img_size, patch_size=a.patch_size, in_chans=a.in_chans, embed_dim=a.embed_dim,
                depth=a.depth, num_heads=a.num_heads, mlp_ratio=a.mlp_ratio, out_chans=a.out_chans,
                qkv_bias=a.qkv_bias, norm_layer=partial(nn.LayerNorm, eps=1e-6), act_layer=nn.GELU,
                use_abs_pos=a.use_abs_pos, use_rel_pos=a.use_rel_pos, window_size=a.window_size,
                global_attn_indexes=a.global_attn_indexes,
            )
        sd = resize_for_input(load_encoder_state_dict(self.checkpoint, mmap=False), a, self.img_size)
        vit.load_state_dict(sd, strict=True, assign=True)
        return vit

    def prompt_decoder(self, device: torch.device):
        """SAM's prompt encoder and mask decoder from the checkpoint (:mod:`.sam_prompt`)."""
        from .sam_prompt import SamPromptDecoder

        return SamPromptDecoder(self.checkpoint, self.map_size, self.img_size, device)

    def choose_attention(self, setting: str, device: torch.device, stored: dict | None) -> AttentionPath:
        """``--attention``: ``auto`` resumes a group with the kernels it was written with (its
        numbers depend on them under reduced precision), else the device's best; set on the spec."""
        dtype = compute_dtype(device)
        if (parse_attention(setting) == ("auto", "auto") and stored and dtype != torch.float32
                and stored.get("compute_dtype") == str(dtype).removeprefix("torch.")):
            self.attention = AttentionPath.from_signature(stored.get("attention"))
        else:
            self.attention = resolve_attention(setting, device, self.head_dim, dtype)
        return self.attention

    def run_log(self) -> dict:
        return {"attention": str(self.attention)}

    def build(self, device: torch.device, prompt_maps: bool = False) -> SamImageEncoder:
        vit = use_fast_attention(self.build_vit(), self.attention.global_blocks, self.attention.windowed_blocks)
        model = SamImageEncoder(vit).to(device).eval()
        model.requires_grad_(False)
        return model


@register_encoder("sam")
def sam_encoder(model: str | None, checkpoint: Path | None, img_size: int | None) -> SamEncoderSpec:
    """SAM from ``checkpoint``, or the official ``model`` (vit_b, vit_l, vit_h; default vit_b)."""
    return SamEncoderSpec(resolve_checkpoint(model, checkpoint), img_size, requested_model=model)
