"""``bench``: the reference encoder path, samembed's encoder path and samembed's whole
extraction, timed in one run on the same device and the same images.

(a) reference: segment_anything's ``ImageEncoderViT`` in float32, one image at a time, preprocessed
    as ``SamPredictor.set_image`` does (``ResizeLongestSide`` on the CPU, then ``Sam.preprocess``
    on the device);
(b) encoder: samembed's path (SDPA attention, bf16 autocast on CUDA, batches of uint8 canvases
    already on the device, optionally ``torch.compile``);
(c) extraction: ``samembed.extract`` end to end (decode, preprocess, encode, write the cache).

Random weights of the published shapes give the real cost. Model FLOPs utilisation is
2 x :func:`encoder_macs` x images per second over the device's peak bf16 rate."""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from segment_anything.utils.transforms import ResizeLongestSide

from .datasets import make_synthetic_dataset, read_rgb
from .devices import compute_dtype, resolve_device
from .encoders import create_encoder, write_tiny_checkpoint
from .encoders.cost import encoder_macs
from .encoders.pixels import PIXEL_MEAN, PIXEL_STD
from .encoders.sam_checkpoint import VARIANTS
from .errors import UsageError
from .extraction import extract

# Dense bf16 rate per device, FLOP/s, and where the figure comes from. Measured rates are large
# matrix products on this project's machines; the others are the vendors' dense figures.
PEAK_BF16 = {
    "H200": (790e12, "measured on an H200 here (large bf16 matrix product)"),
    "H100": (800e12, "measured on an H100 here (large bf16 matrix product, reference.md)"),
    "A100": (312e12, "NVIDIA's dense figure"),
    "L40S": (362e12, "NVIDIA's dense figure"),
    "A10G": (70e12, "NVIDIA's dense figure"),
}


@dataclass
class BenchRow:
    model: str
    img_size: int
    batch_size: int
    device: str
    reference_ips: float | None  # (a)
    encoder_ips: float  # (b)
    extraction_ips: float  # (c)
    cosine_min: float | None  # per-image cosine of (b)'s and (a)'s embeddings, worst image
    cosine_mean: float | None
    gmacs: float
    mfu: float | None  # of (b)
    peak_memory_gib: float | None

    @property
    def speedup(self) -> float | None:
        return self.encoder_ips / self.reference_ips if self.reference_ips else None

    @property
    def extraction_ratio(self) -> float:
        return self.extraction_ips / self.encoder_ips


def peak_flops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((rate for key, (rate, _) in PEAK_BF16.items() if key in name), None)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench(models: list[str] = ("vit_b",), sizes: list[int] = (1024,), *, images: int = 16, batch_size: int | None = None,
          device: str = "auto", compile: bool = False, reference: bool = True, reference_images: int | None = None,
          checkpoint: str | Path | None = None, workers: int | None = None, say=print) -> list[BenchRow]:
    """Time (a), (b) and (c) for every model (``vit_b``, ``vit_l``, ``vit_h``: random weights of
    that shape; or one ``checkpoint`` file) at every input size; returns one row each."""
    dev = resolve_device(device)
    for m in models:
        if checkpoint is None and m not in VARIANTS:
            raise UsageError(f"unknown model '{m}'; choose from {', '.join(VARIANTS)} or pass --checkpoint FILE")
    batch = batch_size or (16 if dev.type == "cuda" else 2)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = make_synthetic_dataset(tmp / "data", images_per_class=max(1, images // 10))
        n = max(1, images // 10) * 10
        rgb = [read_rgb(p) for p in sorted((tmp / "data").rglob("*.jpg"))[:n]]
        for m in ([Path(checkpoint).name] if checkpoint is not None else models):
            if checkpoint is not None:
                ckpt = Path(checkpoint)
            else:
                dim, depth, heads, glob = VARIANTS[m]
                ckpt = write_tiny_checkpoint(tmp / f"{m}.pth", embed_dim=dim, depth=depth, num_heads=heads,
                                             global_attn_indexes=glob, out_chans=256)
            for size in sizes:
                rows.append(_bench_one(m, ckpt, size, rgb, data, tmp, dev, batch, compile, reference,
                                       reference_images or min(len(rgb), 8), workers))
                say(format_row(rows[-1]))
            if checkpoint is None:
                ckpt.unlink()
    return rows


def _bench_one(name, ckpt, size, rgb, data, tmp, dev, batch, compile, reference, reference_images, workers) -> BenchRow:
    spec = create_encoder("sam", checkpoint=ckpt, img_size=size)
    macs = encoder_macs(spec.arch, size)
    mean = torch.tensor(PIXEL_MEAN, device=dev).view(1, 3, 1, 1)
    std = torch.tensor(PIXEL_STD, device=dev).view(1, 3, 1, 1)
    ref_ips, ref_maps = None, []
    if reference:  # (a): one image at a time, float32, as SamPredictor.set_image
        vit = spec.build_vit().to(dev).eval()
        resize = ResizeLongestSide(size)
        with torch.inference_mode():
            for k in range(reference_images + 1):  # the first is a warm-up
                if k == 1:
                    _sync(dev)
                    t0 = time.perf_counter()
                img = resize.apply_image(rgb[max(0, k - 1) % len(rgb)])
                x = torch.as_tensor(img, device=dev).permute(2, 0, 1)[None].float()
                x = (x - mean) / std
                x = F.pad(x, (0, size - x.shape[-1], 0, size - x.shape[-2]))
                out = vit(x)
                if k:
                    ref_maps.append(out.float().flatten(1).cpu())
            _sync(dev)
            ref_ips = reference_images / (time.perf_counter() - t0)
        del vit
    # (b): samembed's encoder on batches of uint8 canvases already on the device
    model = spec.build(dev)
    if compile:
        model = torch.compile(model)
    pre = spec.preprocessor()
    canvases, valid = zip(*(pre(img) for img in rgb))
    images = torch.stack(canvases).to(dev)
    valid = torch.tensor(valid, device=dev)
    dtype = compute_dtype(dev)
    autocast = torch.autocast(dev.type, dtype=dtype, enabled=dtype != torch.float32)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    with torch.inference_mode(), autocast:
        model(images[:batch], valid[:batch])  # warm-up (and compilation)
        _sync(dev)
        reps = max(1, len(rgb) // batch)
        t0 = time.perf_counter()
        for r in range(reps):
            s = slice(r * batch % len(rgb), r * batch % len(rgb) + batch)
            model(images[s], valid[s])
        _sync(dev)
        enc_ips = reps * min(batch, len(rgb)) / (time.perf_counter() - t0)
        cos_min = cos_mean = None
        if ref_maps:
            fast = torch.cat([model(images[i:i + 1], valid[i:i + 1])[1].float().flatten(1).cpu()
                              for i in range(len(ref_maps))])
            cos = F.cosine_similarity(fast, torch.cat(ref_maps), dim=1)
            cos_min, cos_mean = float(cos.min()), float(cos.mean())
    peak_mem = torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda" else None
    del model
    # (c): the whole extraction
    result = extract("eurosat", data_dir=data, checkpoint=ckpt, img_size=size, cache_dir=tmp / f"cache-{name}-{size}",
                     device=str(dev), batch_size=batch, workers=workers, progress=False)
    peak = peak_flops(dev)
    return BenchRow(name, size, batch, torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu", ref_ips,
                    enc_ips, result.images_per_second, cos_min, cos_mean, macs / 1e9,
                    2 * macs * enc_ips / peak if peak else None, peak_mem)


def format_row(row: BenchRow) -> str:
    def f(value, fmt):
        return "n/a" if value is None else format(value, fmt)

    return (f"{row.model} @ {row.img_size}, batch {row.batch_size}, {row.device}: reference {f(row.reference_ips, '.2f')} img/s, "
            f"encoder {row.encoder_ips:.2f} img/s (x{f(row.speedup, '.2f')} the reference), whole extraction "
            f"{row.extraction_ips:.2f} img/s ({100 * row.extraction_ratio:.0f} % of the encoder); {row.gmacs:.1f} GMACs/image, "
            f"MFU {f(row.mfu and 100 * row.mfu, '.1f')} %, peak memory {f(row.peak_memory_gib, '.2f')} GiB; "
            f"cosine to the reference: min {f(row.cosine_min, '.6f')}, mean {f(row.cosine_mean, '.6f')}")


def rows_as_dicts(rows: list[BenchRow]) -> list[dict]:
    return [{**asdict(r), "speedup": r.speedup, "extraction_ratio": r.extraction_ratio} for r in rows]
