"""``sam2``: the image encoder of SAM 2.1 (Hiera tiny, small, base+, large; Ravi et al. 2024),
frozen, through Meta's ``sam2`` package (the optional extra ``samembed[sam2]``).

The model is built by the package itself (``sam2.build_sam.build_sam2`` from its own Hydra
configs) and loaded from a checkpoint in the official format (``{"model": state dict}``) with
``weights_only=True``. A checkpoint describes its trunk (width from the patch embedding, blocks
per stage from where the width doubles); what its tensors cannot say (heads, windows, global
blocks) comes from the published configuration of that shape, so any SAM 2 or 2.1 checkpoint of
a published shape loads, fine-tunes included (SAM 2.0 files by their config, told apart by the
tensors that 2.1 added).

Cached: SAM 2's image embedding, the 256-channel map at stride 16 (64 x 64 at 1024) with the
"no memory" embedding added, exactly what ``SAM2ImagePredictor.set_image`` hands the mask
decoder, as the map; its average (``neck``, 256) and the average of Hiera's last stage (``trunk``,
stride 32; 768 for tiny and small, 896 base+, 1152 large) as pooled vectors. With
``--prompt-features`` (:meth:`Sam2EncoderSpec.prompt_maps`) also the FPN's two higher-resolution
levels after the mask decoder's projections (``conv_s0``: 32 channels at stride 4, ``conv_s1``: 64
at stride 8; 3 x the size of the map), which SAM 2's mask decoder reads beside the image
embedding, so that prompts run SAM 2's own prompt encoder and mask decoder on the cache
(:meth:`Sam2EncoderSpec.prompt_decoder`, docs/prompts.md).

Preprocessing is SAM 2's: the image is stretched to ``img_size`` x ``img_size`` (aspect not kept:
the geometry says so, and maps points, boxes and masks accordingly), bilinear with antialiasing in
floating point (torchvision's ``Resize`` on tensors), normalised with ImageNet's mean and std."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch
from torch import nn

from ..download import download_recorded
from ..errors import CheckpointError, MissingExtraError, UsageError
from ..hashing import sha256sum
from ..paths import user_cache_dir
from .weights import choose_model, local_checkpoint, read_checkpoint
from ..plugins import ENCODER_MODELS
from .base import EncoderSpec, input_size, register_encoder
from .geometry import Geometry
from .pixels import PIXEL_MEAN, PIXEL_STD, PixelNormalise, masked_mean, token_mask
from .prompt_decoder import PromptDecoder

BASE_URL = "https://dl.fbaipublicfiles.com/segment_anything_2/092824/"
STRIDE = 32  # Hiera's total stride: input sides must be multiples of it
PREPROCESSING = ("SAM 2's: stretched to img_size x img_size (aspect not kept), bilinear antialiased in float32 "
                 f"(torchvision Resize on tensors); normalise mean {PIXEL_MEAN} std {PIXEL_STD} on 0-255 "
                 "(ImageNet's on 0-1); no padding")


@dataclass(frozen=True)
class HieraShape:
    """A Hiera trunk: ``embed_dim`` and blocks per stage (read off a checkpoint), and what its
    tensors do not hold: heads, global-attention blocks and window sizes."""

    embed_dim: int
    stages: tuple[int, ...]
    num_heads: int
    global_att_blocks: tuple[int, ...]
    window_spec: tuple[int, ...]
    config: str  # the sam2 package's config of this size: t, s, b+ or l

    def overrides(self, pos_embed_hw: tuple[int, int]) -> list[str]:
        """Hydra overrides that make the package's config of this size build exactly this trunk."""
        channels = [self.embed_dim * 2 ** i for i in range(len(self.stages))][::-1]
        return [f"++model.image_encoder.trunk.embed_dim={self.embed_dim}",
                f"++model.image_encoder.trunk.num_heads={self.num_heads}",
                f"++model.image_encoder.trunk.stages=[{','.join(map(str, self.stages))}]",
                f"++model.image_encoder.trunk.global_att_blocks=[{','.join(map(str, self.global_att_blocks))}]",
                f"++model.image_encoder.trunk.window_spec=[{','.join(map(str, self.window_spec))}]",
                f"++model.image_encoder.trunk.window_pos_embed_bkg_spatial_size=[{pos_embed_hw[0]},{pos_embed_hw[1]}]",
                f"++model.image_encoder.neck.backbone_channel_list=[{','.join(map(str, channels))}]"]


VARIANTS = {
    "hiera_t": HieraShape(96, (1, 2, 7, 2), 1, (5, 7, 9), (8, 4, 14, 7), "t"),
    "hiera_s": HieraShape(96, (1, 2, 11, 2), 1, (7, 10, 13), (8, 4, 14, 7), "s"),
    "hiera_b+": HieraShape(112, (2, 3, 16, 3), 2, (12, 16, 20), (8, 4, 14, 7), "b+"),
    "hiera_l": HieraShape(144, (2, 6, 36, 4), 2, (23, 33, 43), (8, 4, 16, 8), "l"),
}
# samembed's own test shape (random weights only: tests and the quickstart), built from tiny's config.
TINY = HieraShape(16, (1, 1, 2, 1), 1, (3,), (8, 4, 14, 7), "t")
OFFICIAL_FILES = {"hiera_t": "sam2.1_hiera_tiny.pt", "hiera_s": "sam2.1_hiera_small.pt",
                  "hiera_b+": "sam2.1_hiera_base_plus.pt", "hiera_l": "sam2.1_hiera_large.pt"}
TRUNK = "image_encoder.trunk."


def require_sam2():
    """The ``sam2`` package, or one line saying how to install it."""
    try:
        import sam2  # noqa: F401
        from sam2.build_sam import build_sam2
    except ImportError:
        raise MissingExtraError('the sam2 encoder needs the sam2 package: pip install "samembed[sam2]"') from None
    return build_sam2


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The whole model's tensors of a SAM 2 checkpoint (``{"model": ...}`` or a bare state dict)."""
    obj = read_checkpoint(path, "a SAM 2 checkpoint in the official format, e.g. sam2.1_hiera_base_plus.pt", mmap=True)
    sd = obj.get("model", obj) if isinstance(obj, dict) else {}
    if not isinstance(sd, dict) or TRUNK + "patch_embed.proj.weight" not in sd:
        raise CheckpointError(f"{path} is not a SAM 2 checkpoint (no {TRUNK}patch_embed.proj.weight tensor); pass "
                              "one in the official format, e.g. sam2.1_hiera_base_plus.pt")
    return sd


@dataclass(frozen=True)
class Sam2Arch:
    """What a SAM 2 checkpoint holds: its variant (or ``samembed-tiny``), trunk and release."""

    variant: str
    shape: HieraShape
    pos_embed_hw: tuple[int, int]
    release: str  # "2.1" or "2"

    def to_dict(self) -> dict:
        return {"variant": self.variant, "release": self.release, "pos_embed_hw": list(self.pos_embed_hw),
                **{k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self.shape).items()}}


def infer_arch(sd: dict[str, torch.Tensor], source: str) -> Sam2Arch:
    """Read the trunk off the tensors and match it with a published shape (or samembed's tiny)."""
    embed_dim = sd[TRUNK + "patch_embed.proj.weight"].shape[0]
    blocks = sorted({int(k[len(TRUNK):].split(".")[1]) for k in sd if k.startswith(TRUNK + "blocks.")})
    widens = [b for b in blocks if f"{TRUNK}blocks.{b}.proj.weight" in sd]  # first block of each later stage
    bounds = [0] + widens + [len(blocks)]
    stages = tuple(b - a for a, b in zip(bounds, bounds[1:]))
    found = [(n, s) for n, s in [*VARIANTS.items(), ("samembed-tiny", TINY)]
             if (s.embed_dim, s.stages) == (embed_dim, stages)]
    if not found:
        raise CheckpointError(f"{source} has a Hiera trunk of width {embed_dim} with stages {list(stages)}, which is no "
                              f"published SAM 2 shape ({', '.join(VARIANTS)}); its heads and windows cannot be inferred")
    name, shape = found[0]
    pos = sd[TRUNK + "pos_embed"].shape  # (1, C, h, w): the background position embedding
    return Sam2Arch(name, shape, (int(pos[2]), int(pos[3])), "2.1" if "no_obj_embed_spatial" in sd else "2")


def config_name(arch: Sam2Arch) -> str:
    size = arch.shape.config
    return f"configs/sam2.1/sam2.1_hiera_{size}.yaml" if arch.release == "2.1" else f"configs/sam2/sam2_hiera_{size}.yaml"


def build_model(arch: Sam2Arch, img_size: int) -> nn.Module:
    """The whole ``SAM2Base`` of ``arch`` at ``img_size``, randomly initialised, built by the sam2
    package from its own config."""
    build_sam2 = require_sam2()
    return build_sam2(config_name(arch), None, device="cpu", mode="eval", apply_postprocessing=False,
                      hydra_overrides_extra=[f"++model.image_size={img_size}", *arch.shape.overrides(arch.pos_embed_hw)])


#: The maps SAM 2's mask decoder reads besides the image embedding (``high_res_features``), as
#: ``SAM2Base.forward_image`` makes them: FPN level 0 through ``conv_s0``, level 1 through ``conv_s1``.
PROMPT_MAPS = {"high_res_s4": ("conv_s0", 4), "high_res_s8": ("conv_s1", 8)}


class Sam2ImageEncoder(nn.Module):
    """(B, 3, S, S) float32 0-255 canvases (stretched, no padding) + valid_hw (B, 2) ->
    ({"neck": (B, 256), "trunk": (B, 8E)}, image embedding (B, 256, S/16, S/16)); with
    ``prompt_maps`` a third item, the decoder's high-resolution maps {"high_res_s4": (B, 32, S/4,
    S/4), "high_res_s8": (B, 64, S/8, S/8)} (:data:`PROMPT_MAPS`)."""

    def __init__(self, model: nn.Module, prompt_maps: bool = False):
        super().__init__()
        self.trunk = model.image_encoder.trunk
        self.neck = model.image_encoder.neck
        self.scalp = model.image_encoder.scalp
        self.add_no_mem = bool(model.directly_add_no_mem_embed)
        self.no_mem_embed = model.no_mem_embed  # (1, 1, 256)
        self.normalise = PixelNormalise()
        self.projections = None
        if prompt_maps:
            if not model.use_high_res_features_in_sam:
                raise CheckpointError("this SAM 2 model's mask decoder reads no high-resolution features; extract "
                                      "without --prompt-features")
            self.projections = nn.ModuleDict({name: getattr(model.sam_mask_decoder, conv)
                                              for name, (conv, _) in PROMPT_MAPS.items()})

    def forward(self, images: torch.Tensor, valid_hw: torch.Tensor, data: torch.Tensor | None = None):
        size = images.shape[-1]
        stages = self.trunk(self.normalise(images, valid_hw, data))  # 4 maps, stride 4 ... 32
        levels, _ = self.neck(stages)
        if self.scalp > 0:
            levels = levels[: -self.scalp]
        embedding = levels[-1]  # (B, 256, S/16, S/16)
        if self.add_no_mem:  # as SAM2ImagePredictor.set_image
            embedding = embedding + self.no_mem_embed.view(1, -1, 1, 1)
        last = stages[-1]  # (B, 8E, S/32, S/32)
        pooled = {"neck": masked_mean(embedding.float(), token_mask(valid_hw, embedding.shape[-1],
                                                                    size // embedding.shape[-1], data)),
                  "trunk": masked_mean(last.float(), token_mask(valid_hw, last.shape[-1], size // last.shape[-1], data))}
        if self.projections is None:
            return pooled, embedding
        return pooled, embedding, {name: self.projections[name](levels[i]) for i, name in enumerate(PROMPT_MAPS)}


class Sam2EncoderSpec(EncoderSpec):
    name = "sam2"

    def __init__(self, checkpoint: Path, img_size: int | None, requested_model: str | None = None):
        require_sam2()
        self.checkpoint = checkpoint
        sd = load_state_dict(checkpoint)
        self.arch = infer_arch(sd, str(checkpoint))
        # The decoder's projections of the high-resolution levels (absent where the model does not use them)
        self._projections = {name: int(sd[f"sam_mask_decoder.{conv}.weight"].shape[0])
                             for name, (conv, _) in PROMPT_MAPS.items() if f"sam_mask_decoder.{conv}.weight" in sd}
        if requested_model and requested_model != self.arch.variant:
            raise UsageError(f"--model {requested_model} was given but {checkpoint} holds a {self.arch.variant}; drop "
                             "--model or fix it")
        self.geometry = Geometry(input_size(img_size, ENCODER_MODELS["sam2"].img_size, STRIDE, "sam2"), 16, resize="square", pixels="float32")
        self.sha256 = sha256sum(checkpoint)
        self.pooled_dims = {"neck": 256, "trunk": self.arch.shape.embed_dim * 2 ** (len(self.arch.shape.stages) - 1)}
        self.map_channels = 256

    @property
    def key(self) -> str:
        variant = self.arch.variant.replace("+", "plus")  # '+' joins a group name to its composite
        return f"sam{self.arch.release}-{variant}-{self.sha256[:8]}"

    def signature(self) -> dict:
        try:
            package = version("sam2")
        except PackageNotFoundError:
            package = "unknown"
        return {"encoder": "sam2", "variant": self.arch.variant, "checkpoint_sha256": self.sha256,
                "img_size": self.img_size, "preprocessing": PREPROCESSING, "geometry": self.geometry.to_dict(),
                "arch": self.arch.to_dict(), "sam2_version": package,
                "map": "image embedding: FPN level at stride 16 + no_mem_embed (SAM2ImagePredictor's image_embed)"}

    def prompt_maps(self) -> dict[str, tuple[int, int]]:
        """SAM 2's mask decoder also reads two higher-resolution maps: name -> (channels, stride);
        32 channels at stride 4 and 64 at stride 8 in every published model."""
        return {name: (channels, PROMPT_MAPS[name][1]) for name, channels in self._projections.items()}

    def build_sam2(self) -> nn.Module:
        """The package's ``SAM2Base`` with the checkpoint's weights, in eval mode on the CPU."""
        model = build_model(self.arch, self.img_size)
        sd = load_state_dict(self.checkpoint)
        missing, unexpected = model.load_state_dict(sd, strict=False)
        if missing or unexpected:
            raise CheckpointError(f"{self.checkpoint} does not fit SAM {self.arch.release} {self.arch.variant} (missing "
                                  f"{missing[:2]}, unexpected {unexpected[:2]}); pass an official SAM 2 checkpoint")
        return model.eval()

    def build(self, device: torch.device, prompt_maps: bool = False) -> Sam2ImageEncoder:
        """The frozen image encoder; with ``prompt_maps`` its forward also returns the maps of
        :meth:`prompt_maps`."""
        model = Sam2ImageEncoder(self.build_sam2(), prompt_maps).to(device).eval()
        model.requires_grad_(False)
        return model

    def prompt_decoder(self, device: torch.device) -> Sam2PromptDecoder:
        """SAM 2's own ``PromptEncoder`` and ``MaskDecoder`` (``sam_prompt_encoder``,
        ``sam_mask_decoder``) with the checkpoint's weights, built by the sam2 package for this
        input size, frozen, in eval mode on ``device``."""
        model = self.build_sam2()
        modules = model.sam_prompt_encoder, model.sam_mask_decoder
        for module in modules:
            module.to(device).eval().requires_grad_(False)
        return Sam2PromptDecoder(*modules)


class Sam2PromptDecoder(PromptDecoder):
    """SAM 2's prompt encoder and mask decoder, called as ``SAM2ImagePredictor._predict`` calls
    them: a box becomes two points labelled 2 and 3 placed before the clicks, the prompt encoder
    gets no box (so it pads every prompt with a padding point), and the decoder repeats the image's
    features for a batch of prompts and reads the two higher-resolution maps."""

    def __init__(self, prompt_encoder: nn.Module, mask_decoder: nn.Module):
        self.prompt_encoder, self.mask_decoder = prompt_encoder, mask_decoder
        self.embed_dim = prompt_encoder.embed_dim
        self._pe = prompt_encoder.get_dense_pe()

    def __call__(self, embedding, maps, points, boxes, multimask):
        if boxes is not None:
            corners = boxes.reshape(-1, 2, 2)
            labels = torch.tensor([[2, 3]], dtype=torch.int, device=corners.device).repeat(len(corners), 1)
            points = (corners, labels) if points is None else (torch.cat([corners, points[0]], dim=1),
                                                               torch.cat([labels, points[1]], dim=1))
        sparse, dense = self.prompt_encoder(points=points, boxes=None, masks=None)
        masks, scores, _, _ = self.mask_decoder(image_embeddings=embedding, image_pe=self._pe,
                                                sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                                                multimask_output=multimask, repeat_image=points[0].shape[0] > 1,
                                                high_res_features=maps)
        return masks, scores


def resolve_checkpoint(model: str | None, checkpoint: Path | None) -> Path:
    """``checkpoint`` if given, else the official SAM 2.1 file of ``model`` (default hiera_b+),
    downloaded once into the user cache with a progress bar and its sha256 recorded beside it
    (Meta publishes none), so a file that changed later is refused."""
    if checkpoint is not None:
        return local_checkpoint(checkpoint)
    filename = OFFICIAL_FILES[choose_model("sam2", model, list(OFFICIAL_FILES)).name]
    return download_recorded(BASE_URL + filename, user_cache_dir() / "checkpoints" / filename)


@register_encoder("sam2")
def sam2_encoder(model: str | None, checkpoint: Path | None, img_size: int | None) -> Sam2EncoderSpec:
    """SAM 2 from ``checkpoint``, or the official SAM 2.1 ``model`` (hiera_t, hiera_s, hiera_b+,
    hiera_l; default hiera_b+)."""
    require_sam2()
    return Sam2EncoderSpec(resolve_checkpoint(model, checkpoint), img_size, requested_model=model)


def write_tiny_sam2_checkpoint(path: str | Path, img_size: int = 1024, seed: int = 0) -> Path:
    """A whole SAM 2.1 model of samembed's tiny trunk (:data:`TINY`; everything else SAM 2.1
    tiny's) with random weights, saved in the official format ``{"model": state dict}``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = build_model(Sam2Arch("samembed-tiny", TINY, (7, 7), "2.1"), img_size)
    torch.save({"model": model.state_dict()}, path)
    return path
