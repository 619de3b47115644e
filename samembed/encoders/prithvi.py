"""``prithvi``: the encoder of IBM-NASA's Prithvi-EO-2.0 (a ViT pretrained as a masked
autoencoder on six HLS bands: blue, green, red, narrow NIR, SWIR 1, SWIR 2), frozen.

Built from timm's ``VisionTransformer`` with the published configuration (300M: ViT-L/16; 600M:
ViT-H/14; 100M: ViT-B/16), loaded from the official state dict (``Prithvi_EO_V2_300M.pt``, ...:
``encoder.*`` keys) with ``weights_only=True``. TerraTorch's backbone would pin us to its own
release train of torch, timm and Lightning; the encoder is a plain ViT, so timm suffices. For
one frame the official 3D patch embedding (a Conv3d with a time kernel of 1) is the same
convolution in 2D, and the fixed 3D sin-cos positions of the first frame are those of a single
frame (time 0); at another input size they are resampled as Prithvi does (bicubic, corners
aligned). The -TL models' time and location codes are not used (Prithvi's own forward skips
them without coordinates).

Input: six bands of reflectance as stored (``x 10,000``), mapped from the dataset's bands
(Sentinel-2: B02, B03, B04, B8A, B11, B12; :mod:`samembed.datasets.bands`), resized in float32
(longest side to ``img_size``, default 224) and normalised with Prithvi-EO-2.0's own means and
standard deviations; zero padding after normalising. Cached: the final (normalised) patch tokens
as the (C, S/P, S/P) map, and ``mean`` (the mean of the patch tokens that cover the image, the
default feature: an MAE's class token is not trained to summarise) and ``cls``."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..download import download_recorded
from ..errors import CheckpointError
from ..hashing import sha256sum
from ..paths import user_cache_dir
from .weights import choose_model, local_checkpoint, read_checkpoint
from ..plugins import ENCODER_MODELS
from .base import EncoderSpec, input_size, register_encoder
from .geometry import Geometry
from .pixels import PixelNormalise, masked_mean, token_mask

HLS_BANDS = ("BLUE", "GREEN", "RED", "NIR_NARROW", "SWIR_1", "SWIR_2")
# Prithvi-EO-2.0's normalisation (its config.json), reflectance x 10,000, in HLS_BANDS order.
MEAN = (1087.0, 1342.0, 1433.0, 2734.0, 1958.0, 1363.0)
STD = (2248.0, 2179.0, 2178.0, 1850.0, 1242.0, 1049.0)
HUB = "https://huggingface.co/ibm-nasa-geospatial/"
NATIVE_IMG_SIZE = ENCODER_MODELS["prithvi"].img_size


@dataclass(frozen=True)
class PrithviArch:
    embed_dim: int
    depth: int
    num_heads: int
    patch_size: int
    in_chans: int = 6
    mlp_ratio: float = 4.0
    native_img_size: int = NATIVE_IMG_SIZE
    heads_from: str = "published configuration"


@dataclass(frozen=True)
class Release:
    arch: PrithviArch
    repo: str
    filename: str

    @property
    def url(self) -> str:
        return f"{HUB}{self.repo}/resolve/main/{self.filename}"


RELEASES = {
    "300m": Release(PrithviArch(1024, 24, 16, 16), "Prithvi-EO-2.0-300M", "Prithvi_EO_V2_300M.pt"),
    "300m-tl": Release(PrithviArch(1024, 24, 16, 16), "Prithvi-EO-2.0-300M-TL", "Prithvi_EO_V2_300M_TL.pt"),
    "600m": Release(PrithviArch(1280, 32, 16, 14), "Prithvi-EO-2.0-600M", "Prithvi_EO_V2_600M.pt"),
    "600m-tl": Release(PrithviArch(1280, 32, 16, 14), "Prithvi-EO-2.0-600M-TL", "Prithvi_EO_V2_600M_TL.pt"),
    "100m-tl": Release(PrithviArch(768, 12, 12, 16), "Prithvi-EO-2.0-100M-TL", "Prithvi_EO_V2_100M_TL.pt"),
}


def load_encoder_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The encoder's tensors of a Prithvi checkpoint, keys relative to the encoder: the official
    state dict (``encoder.*`` beside ``decoder.*``), one nested under ``model`` or ``state_dict``,
    with an outer prefix, or an encoder-only one."""
    obj = read_checkpoint(path, "a Prithvi-EO-2.0 state dict such as Prithvi_EO_V2_300M.pt")
    for nested in ("model", "state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(nested), dict):
            obj = obj[nested]
    anchor = "patch_embed.proj.weight"
    prefixes = [k[: -len(anchor)] for k in obj if isinstance(k, str) and k.endswith(anchor)] \
        if isinstance(obj, dict) else []
    prefixes = [p for p in prefixes if "decoder" not in p]
    if not prefixes:
        raise CheckpointError(f"{path} is not a Prithvi checkpoint (no encoder.{anchor} tensor); pass a "
                              "Prithvi-EO-2.0 state dict such as Prithvi_EO_V2_300M.pt")
    prefix = next((p for p in prefixes if "encoder" in p), prefixes[0])
    return {k[len(prefix):]: v for k, v in obj.items() if k.startswith(prefix) and torch.is_tensor(v)}


def infer_arch(sd: dict[str, torch.Tensor], source: str) -> PrithviArch:
    """The architecture a Prithvi encoder state dict describes: width, patch and bands from the
    patch embedding, depth from the blocks; heads (not stored) from the published release of that
    shape, else 64 channels per head (recorded as assumed)."""
    proj = sd["patch_embed.proj.weight"]  # (E, bands, 1, P, P) official 3D; (E, bands, P, P) 2D
    if proj.dim() == 5 and proj.shape[2] != 1:
        raise CheckpointError(f"{source} embeds {proj.shape[2]} frames per patch; samembed encodes one image "
                              "(a time kernel of 1, as every Prithvi-EO-2.0 release)")
    depth = len({int(k.split(".")[1]) for k in sd if k.startswith("blocks.")})
    if "blocks.0.mlp.fc1.weight" not in sd or depth == 0:
        raise CheckpointError(f"{source} is not a Prithvi checkpoint (its encoder lacks blocks.0.mlp.fc1.weight); pass "
                              "a Prithvi-EO-2.0 state dict such as Prithvi_EO_V2_300M.pt")
    embed_dim, bands, patch = proj.shape[0], proj.shape[1], proj.shape[-1]
    mlp_ratio = sd["blocks.0.mlp.fc1.weight"].shape[0] / embed_dim
    for release in RELEASES.values():
        a = release.arch
        if (a.embed_dim, a.depth, a.patch_size) == (embed_dim, depth, patch):
            return PrithviArch(embed_dim, depth, a.num_heads, patch, bands, mlp_ratio)
    return PrithviArch(embed_dim, depth, max(1, embed_dim // 64), patch, bands, mlp_ratio,
                       heads_from="assumed: 64 channels per head (the shape matches no published release)")


def first_frame_positions(pos: torch.Tensor, arch: PrithviArch, img_size: int) -> torch.Tensor:
    """(1, 1 + T*t*t, E) official positions (T frames of a t x t grid, class position first) ->
    (1, 1 + g*g, E) for one frame on the g x g grid of ``img_size``: the first frame's positions
    (time 0: a single frame's), resampled bicubically with corners aligned when g != t."""
    t = arch.native_img_size // arch.patch_size
    g = img_size // arch.patch_size
    cls, grid = pos[:, :1], pos[:, 1:1 + t * t]
    if g != t:
        grid = grid.reshape(1, t, t, -1).permute(0, 3, 1, 2).float()
        grid = F.interpolate(grid, size=(g, g), mode="bicubic", align_corners=True)
        grid = grid.permute(0, 2, 3, 1).reshape(1, g * g, -1)
    return torch.cat([cls, grid], dim=1).contiguous()


def build_vit(arch: PrithviArch, img_size: int) -> nn.Module:
    """timm's ``VisionTransformer`` in Prithvi's configuration (class token, qkv bias, LayerNorm
    eps 1e-5 as ``nn.LayerNorm``'s default), with no head."""
    from timm.models.vision_transformer import VisionTransformer

    return VisionTransformer(
        img_size=img_size, patch_size=arch.patch_size, in_chans=arch.in_chans, num_classes=0, global_pool="",
        embed_dim=arch.embed_dim, depth=arch.depth, num_heads=arch.num_heads, mlp_ratio=arch.mlp_ratio,
        qkv_bias=True, class_token=True, norm_layer=partial(nn.LayerNorm, eps=1e-5),
    )


def to_timm(sd: dict[str, torch.Tensor], arch: PrithviArch, img_size: int) -> dict[str, torch.Tensor]:
    """An official Prithvi encoder state dict in the keys and shapes of :func:`build_vit` at
    ``img_size``; the -TL models' time and location scales are left out (not used)."""
    out = {k: v for k, v in sd.items() if not k.startswith(("temporal_embed_enc.", "location_embed_enc."))}
    proj = out["patch_embed.proj.weight"]
    if proj.dim() == 5:
        out["patch_embed.proj.weight"] = proj[:, :, 0].contiguous()
    out["pos_embed"] = first_frame_positions(out["pos_embed"], arch, img_size)
    return out


class PrithviEncoder(nn.Module):
    """(B, 6, S, S) float32 reflectance + valid_hw (B, 2) -> ({"mean": (B, E), "cls": (B, E)},
    final patch tokens (B, E, S/P, S/P))."""

    def __init__(self, vit: nn.Module, patch: int):
        super().__init__()
        self.vit, self.patch = vit, patch
        self.normalise = PixelNormalise(MEAN, STD)

    def forward(self, images: torch.Tensor, valid_hw: torch.Tensor, data: torch.Tensor | None = None):
        side = images.shape[-1] // self.patch
        tokens = self.vit.forward_features(self.normalise(images, valid_hw, data))  # (B, 1 + T*T, E), final norm
        patches = tokens[:, 1:].transpose(1, 2).reshape(len(images), -1, side, side)
        cells = token_mask(valid_hw, side, self.patch, data)
        return {"mean": masked_mean(patches.float(), cells), "cls": tokens[:, 0].float()}, patches


class PrithviEncoderSpec(EncoderSpec):
    name = "prithvi"
    input_bands = HLS_BANDS

    def __init__(self, release: str | None, random: bool, checkpoint: Path | None, img_size: int | None):
        self.release, self.random, self.checkpoint = release, random, checkpoint
        if checkpoint is not None:
            self.arch = infer_arch(load_encoder_state_dict(checkpoint), str(checkpoint))
            self.sha256 = sha256sum(checkpoint)
        else:
            self.arch, self.sha256 = RELEASES[release].arch, None
        if self.arch.in_chans != len(HLS_BANDS):
            raise CheckpointError(f"{checkpoint} takes {self.arch.in_chans} bands; samembed feeds Prithvi-EO-2.0's six "
                                  f"({', '.join(HLS_BANDS)})")
        patch = self.arch.patch_size
        self.geometry = Geometry(input_size(img_size, NATIVE_IMG_SIZE, patch, "prithvi"), patch,
                                 pixels="float32", channels=len(HLS_BANDS))
        self.pooled_dims = {"mean": self.arch.embed_dim, "cls": self.arch.embed_dim}
        self.map_channels = self.arch.embed_dim

    @property
    def key(self) -> str:
        if self.sha256:
            official = next((name for name, r in RELEASES.items() if self.checkpoint.name == r.filename), None)
            return f"prithvi-{official or 'custom'}-{self.sha256[:8]}"
        return f"prithvi-{self.release}-random"

    def signature(self) -> dict:
        weights = {"checkpoint_sha256": self.sha256} if self.sha256 else {"weights": "random, seed 0"}
        return {"encoder": "prithvi", "variant": self.release or "custom", **weights, "img_size": self.img_size,
                "arch": asdict(self.arch), "geometry": self.geometry.to_dict(),
                "preprocessing": (f"bands {', '.join(HLS_BANDS)} as stored (reflectance x 10,000), float32; longest side "
                                  f"resized to img_size (torch bilinear, antialiased); normalise mean {MEAN} std {STD}; "
                                  "zero-pad bottom and right after normalising"),
                "tokens": "final norm; mean of valid patch tokens, cls token; one frame, no time or location codes"}

    def build(self, device: torch.device, prompt_maps: bool = False) -> PrithviEncoder:
        torch.manual_seed(0)
        with torch.device("meta" if self.checkpoint is not None else "cpu"):
            vit = build_vit(self.arch, self.img_size)
        if self.checkpoint is not None:
            sd = to_timm(load_encoder_state_dict(self.checkpoint), self.arch, self.img_size)
            try:
                vit.load_state_dict(sd, strict=True, assign=True)
            except RuntimeError as err:
                first = " ".join(str(err).split())[:160]
                raise CheckpointError(f"{self.checkpoint} does not fit Prithvi's encoder ({first}); pass an official "
                                      "Prithvi-EO-2.0 state dict") from None
        else:  # random weights, with the fixed sin-cos positions a checkpoint would hold
            vit.pos_embed.data.copy_(first_frame_positions(sincos_positions(self.arch), self.arch, self.img_size))
        model = PrithviEncoder(vit, self.arch.patch_size).to(device).eval()
        model.requires_grad_(False)
        return model


def sincos_positions(arch: PrithviArch, frames: int = 1) -> torch.Tensor:
    """(1, 1 + frames*t*t, E) fixed 3D sin-cos positions of Prithvi's native grid (t = 224 / P):
    per token, sin and cos of its width, height and time positions at geometric frequencies, in
    6/16, 6/16 and 4/16 of the channels (as MAE's 2D recipe, with time); the class position is 0."""
    t = arch.native_img_size // arch.patch_size
    e = arch.embed_dim

    def axis(dim: int, positions: torch.Tensor) -> torch.Tensor:
        freq = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2))
        angles = positions.double()[:, None] * freq[None]
        return torch.cat([angles.sin(), angles.cos()], dim=1)

    ts, hs, ws = torch.meshgrid(torch.arange(frames), torch.arange(t), torch.arange(t), indexing="ij")
    grid = torch.cat([axis(e // 16 * 6, ws.flatten()), axis(e // 16 * 6, hs.flatten()), axis(e // 16 * 4, ts.flatten())],
                     dim=1)
    return torch.cat([torch.zeros(1, e, dtype=torch.float64), grid]).float()[None]


@register_encoder("prithvi")
def prithvi_encoder(model: str | None, checkpoint: Path | None, img_size: int | None) -> PrithviEncoderSpec:
    """Prithvi-EO-2.0 from ``checkpoint``, or the official release ``model`` (300m, 300m-tl, 600m,
    600m-tl, 100m-tl; default 300m), downloaded once with its sha256 recorded; ``-random`` for
    random weights of a release's shape."""
    choice = choose_model("prithvi", model, list(RELEASES))
    if checkpoint is not None:
        return PrithviEncoderSpec(choice.name if model else None, False, local_checkpoint(checkpoint), img_size)
    if choice.random:
        return PrithviEncoderSpec(choice.name, True, None, img_size)
    r = RELEASES[choice.name]
    path = download_recorded(r.url, user_cache_dir() / "checkpoints" / r.filename)
    return PrithviEncoderSpec(choice.name, False, path, img_size)
