"""``bench``: the reference encoder path, samembed's encoder paths, segment-anything-fast's and
samembed's whole extraction, timed in one run on the same device and the same images.

(a) reference: segment_anything's ``ImageEncoderViT`` in float32, one image at a time, preprocessed
    as ``SamPredictor.set_image`` does (``ResizeLongestSide`` on the CPU, then ``Sam.preprocess``
    on the device);
(b) encoder, SDPA: samembed's path with the relative-position bias materialised for SDPA (bf16
    autocast on CUDA, batches of uint8 canvases already on the device, optionally compiled);
(c) extraction: ``samembed.extract`` end to end (decode, preprocess, encode, write the cache), with
    the attention that ``--attention`` resolves to (``auto``: FlexAttention in the global blocks on
    CUDA where it runs);
(d) segment-anything-fast's encoder (its Triton kernel with the bias fused, bf16 weights on CUDA)
    on the same batches, when its package is importable;
(e) encoder, FlexAttention: samembed's path with the bias added inside FlexAttention's kernel in
    the global blocks (windowed blocks as ``--attention`` says).

Each path's first call is timed on its own (compilation, when asked for, happens there). Random
weights of the published shapes give the real cost. Model FLOPs utilisation is
2 x :func:`encoder_macs` x images per second over the device's peak bf16 rate."""

from __future__ import annotations

import contextlib
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from segment_anything.utils.transforms import ResizeLongestSide

from .cache.reader import open_cache
from .datasets import make_synthetic_dataset, read_rgb
from .devices import compute_dtype, resolve_device
from .encoders import create_encoder, write_tiny_checkpoint
from .encoders.attention import AttentionPath, parse_attention, resolve_attention
from .encoders.cost import encoder_macs
from .encoders.pixels import PIXEL_MEAN, PIXEL_STD
from .encoders.sam_checkpoint import VARIANTS
from .encoders.sam_fast import build_sam_fast, sam_fast_problem
from .errors import SamembedError, UsageError
from .extraction import extract

# Dense bf16 rate per device, FLOP/s, and where the figure comes from: the vendors' dense (not
# sparse) tensor-core figures; a machine reaches less on real matrix products.
PEAK_BF16 = {
    "H200": (989e12, "NVIDIA's dense figure (H200 SXM datasheet; not measured by samembed)"),
    "H100": (989e12, "NVIDIA's dense figure (H100 SXM datasheet; not measured by samembed)"),
    "A100": (312e12, "NVIDIA's dense figure"),
    "L40S": (362e12, "NVIDIA's dense figure"),
    "A10G": (70e12, "NVIDIA's dense figure"),
}

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")  # reduce-overhead: CUDA graphs


@dataclass
class BenchRow:
    model: str
    img_size: int
    batch_size: int
    device: str
    reference_ips: float | None  # (a)
    encoder_ips: float | None  # (b); None: see encoder_note
    extraction_ips: float | None  # (c); None: see extraction_note
    cosine_min: float | None  # per-image cosine of (b)'s and (a)'s embeddings, worst image
    cosine_mean: float | None
    gmacs: float
    mfu: float | None  # of (b)
    peak_memory_gib: float | None  # of (b)
    compile_mode: str | None = None  # None: not compiled
    encoder_first_s: float | None = None  # (b)'s first call: warm-up, and compilation when compiled
    encoder_note: str | None = None  # why (b) is missing (out of memory)
    attention: str = "sdpa,sdpa"  # (c)'s kernels, global,windowed blocks
    extraction_note: str | None = None  # why (c) is missing
    sam_fast_ips: float | None = None  # (d)
    sam_fast_note: str | None = None  # why (d) is missing
    sam_fast_first_s: float | None = None
    sam_fast_cosine_min: float | None = None
    sam_fast_mfu: float | None = None
    sam_fast_peak_memory_gib: float | None = None
    flex_ips: float | None = None  # (e)
    flex_note: str | None = None  # why (e) is missing
    flex_attention: str | None = None  # (e)'s kernels, global,windowed blocks
    flex_first_s: float | None = None
    flex_cosine_min: float | None = None
    flex_mfu: float | None = None
    flex_peak_memory_gib: float | None = None

    @property
    def speedup(self) -> float | None:
        return _ratio(self.encoder_ips, self.reference_ips)

    @property
    def sam_fast_speedup(self) -> float | None:
        return _ratio(self.sam_fast_ips, self.reference_ips)

    @property
    def flex_speedup(self) -> float | None:
        return _ratio(self.flex_ips, self.reference_ips)

    @property
    def extraction_ratio(self) -> float | None:
        """(c) over the encoder path with the same attention kernels, (b) or (e); ``None`` when
        (c) ran kernels that neither timed."""
        same = {"sdpa,sdpa": self.encoder_ips, self.flex_attention: self.flex_ips}.get(self.attention)
        return _ratio(self.extraction_ips, same)


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


@dataclass
class _Timed:
    ips: float
    first_s: float
    cosine_min: float | None
    cosine_mean: float | None
    peak_memory_gib: float | None


def peak_flops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((rate for key, (rate, _) in PEAK_BF16.items() if key in name), None)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def compile_mode_of(compile: bool | str) -> str | None:
    """``--compile`` / ``--compile-mode`` -> a torch.compile mode, or ``None`` (not compiled)."""
    if compile is False or compile is None:
        return None
    mode = "default" if compile is True else compile
    if mode not in COMPILE_MODES:
        raise UsageError(f"--compile-mode must be one of {', '.join(COMPILE_MODES)}, not '{mode}'")
    return mode


def bench(models: list[str] = ("vit_b",), sizes: list[int] = (1024,), *, images: int = 16, batch_size: int | None = None,
          device: str = "auto", compile: bool | str = False, reference: bool = True, reference_images: int | None = None,
          checkpoint: str | Path | None = None, workers: int | None = None, attention: str = "auto",
          peers: bool = True, say=print) -> list[BenchRow]:
    """Time (a) to (e) for every model (``vit_b``, ``vit_l``, ``vit_h``: random weights of that
    shape; or one ``checkpoint`` file) at every input size; returns one row each. ``compile``:
    ``True`` or a torch.compile mode for (b), (d), (e) (and (c), in the default mode);
    ``attention``: (c)'s kernels and (e)'s windowed blocks; ``peers=False`` leaves (d) and (e) out."""
    dev = resolve_device(device)
    mode = compile_mode_of(compile)
    parse_attention(attention)
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
                rows.append(_bench_one(m, ckpt, size, rgb, data, tmp, dev, batch, mode, reference,
                                       reference_images or min(len(rgb), 8), workers, attention, peers))
                say(format_row(rows[-1]))
            if checkpoint is None:
                ckpt.unlink()
    return rows


def _reference(spec, size, rgb, dev, count) -> tuple[float, list[torch.Tensor]]:
    """(a): images per second and the neck maps of the first ``count`` images, one at a time."""
    vit = spec.build_vit().to(dev).eval()
    resize = ResizeLongestSide(size)
    mean = torch.tensor(PIXEL_MEAN, device=dev).view(1, 3, 1, 1)
    std = torch.tensor(PIXEL_STD, device=dev).view(1, 3, 1, 1)
    maps = []
    with torch.inference_mode():
        for k in range(count + 1):  # the first is a warm-up
            if k == 1:
                _sync(dev)
                t0 = time.perf_counter()
            img = resize.apply_image(rgb[max(0, k - 1) % len(rgb)])
            x = torch.as_tensor(img, device=dev).permute(2, 0, 1)[None].float()
            x = F.pad((x - mean) / std, (0, size - x.shape[-1], 0, size - x.shape[-2]))
            out = vit(x)
            if k:
                maps.append(out.float().flatten(1).cpu())
        _sync(dev)
        return count / (time.perf_counter() - t0), maps


def _time(model, images, valid, batch, dev, autocast, ref_maps, mode) -> _Timed:
    """Images per second of ``model`` on batches of ``batch`` canvases already on the device, its
    first call's seconds, the cosine of its neck maps to the reference's, its peak memory."""
    if mode is not None:
        model = torch.compile(model, mode=mode, dynamic=False)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    n = len(images)
    with torch.inference_mode(), autocast:
        _sync(dev)
        t0 = time.perf_counter()
        model(images[:batch], valid[:batch])  # warm-up (and compilation)
        _sync(dev)
        first = time.perf_counter() - t0
        reps = max(1, n // batch)
        t0 = time.perf_counter()
        for r in range(reps):
            s = slice(r * batch % n, r * batch % n + batch)
            model(images[s], valid[s])
        _sync(dev)
        ips = reps * min(batch, n) / (time.perf_counter() - t0)
        cos_min = cos_mean = None
        if ref_maps:  # whole batches (no new shape to compile), the first len(ref_maps) images compared
            maps = []
            for s in range(0, len(ref_maps), batch):
                idx = torch.arange(s, s + batch, device=images.device) % n
                maps.append(model(images[idx], valid[idx])[1].float().flatten(1).cpu())
            cos = F.cosine_similarity(torch.cat(maps)[: len(ref_maps)], torch.cat(ref_maps), dim=1)
            cos_min, cos_mean = float(cos.min()), float(cos.mean())
    peak = torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda" else None
    return _Timed(ips, first, cos_min, cos_mean, peak)


def _bench_one(name, ckpt, size, rgb, data, tmp, dev, batch, mode, reference, reference_images, workers, attention,
               peers) -> BenchRow:
    spec = create_encoder("sam", checkpoint=ckpt, img_size=size)
    macs = encoder_macs(spec.arch, size)
    peak = peak_flops(dev)

    def mfu(ips):
        return 2 * macs * ips / peak if peak and ips else None

    ref_ips, ref_maps = _reference(spec, size, rgb, dev, reference_images) if reference else (None, [])
    pre = spec.preprocessor()
    canvases, valid = zip(*(pre(img) for img in rgb))
    images = torch.stack(canvases).to(dev)
    valid = torch.tensor(valid, device=dev)
    dtype = compute_dtype(dev)
    autocast = torch.autocast(dev.type, dtype=dtype, enabled=dtype != torch.float32)
    row = BenchRow(name, size, batch, torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu", ref_ips,
                   None, None, None, None, macs / 1e9, None, None, mode)
    # (b): the SDPA path
    spec.attention = AttentionPath("sdpa", "sdpa")
    b, row.encoder_note = _unless_out_of_memory(
        dev, lambda: _time(spec.build(dev), images, valid, batch, dev, autocast, ref_maps, mode))
    if b is not None:
        row.encoder_ips, row.encoder_first_s, row.cosine_min, row.cosine_mean = b.ips, b.first_s, b.cosine_min, b.cosine_mean
        row.mfu, row.peak_memory_gib = mfu(b.ips), b.peak_memory_gib
    if peers:
        # (d): segment-anything-fast, in its own precision (no autocast)
        row.sam_fast_note = sam_fast_problem()
        if row.sam_fast_note is None:
            try:
                d, row.sam_fast_note = _unless_out_of_memory(dev, lambda: _time(
                    build_sam_fast(spec, dev), images, valid, batch, dev, contextlib.nullcontext(), ref_maps, mode))
            except Exception as err:  # noqa: BLE001  a peer's failure (Triton, its custom op) is a figure, not a crash
                d, row.sam_fast_note = None, f"failed: {type(err).__name__}: {str(err).strip()[:200]}"
            if d is not None:
                row.sam_fast_ips, row.sam_fast_first_s, row.sam_fast_cosine_min = d.ips, d.first_s, d.cosine_min
                row.sam_fast_mfu, row.sam_fast_peak_memory_gib = mfu(d.ips), d.peak_memory_gib
        # (e): FlexAttention in the global blocks
        try:
            spec.attention = resolve_attention(f"flex,{parse_attention(attention)[1]}", dev, spec.head_dim, dtype)
        except SamembedError as err:
            row.flex_note = str(err)
        else:
            row.flex_attention = str(spec.attention)
            e, row.flex_note = _unless_out_of_memory(
                dev, lambda: _time(spec.build(dev), images, valid, batch, dev, autocast, ref_maps, mode))
            if e is not None:
                row.flex_ips, row.flex_first_s, row.flex_cosine_min = e.ips, e.first_s, e.cosine_min
                row.flex_mfu, row.flex_peak_memory_gib = mfu(e.ips), e.peak_memory_gib
    # (c): the whole extraction
    cache = tmp / f"cache-{name}-{size}"
    result, row.extraction_note = _unless_out_of_memory(dev, lambda: extract(
        "eurosat", data_dir=data, checkpoint=ckpt, img_size=size, cache_dir=cache, device=str(dev), batch_size=batch,
        workers=workers, progress=False, compile=mode is not None, attention=attention))
    if result is not None:
        row.extraction_ips = result.images_per_second
        row.attention = _extraction_attention(cache)
    return row


def _unless_out_of_memory(dev: torch.device, measure):
    """``(measure(), None)``, or ``(None, "out of memory ...")`` when the device ran out of it
    (a large batch with the materialised bias), so that the other paths are still timed."""
    try:
        return measure(), None
    except torch.cuda.OutOfMemoryError as err:
        note = f"out of memory ({str(err).splitlines()[0][:120]})"
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    return None, note


def _extraction_attention(cache_dir: Path) -> str:
    """The kernels the extraction's run log names."""
    runs = open_cache(cache_dir, "eurosat").extraction_runs
    return str(runs[-1].get("attention", "sdpa,sdpa")) if runs else "sdpa,sdpa"


def format_row(row: BenchRow) -> str:
    def f(value, fmt):
        return "n/a" if value is None else format(value, fmt)

    def path(label, ips, speedup, mfu, first, cos, note=None):
        if ips is None:
            return f"  {label}: n/a ({note})" if note else f"  {label}: not measured"
        return (f"  {label}: {ips:.2f} img/s (x{f(speedup, '.2f')} the reference), MFU {f(mfu and 100 * mfu, '.1f')} %, "
                f"first call {f(first, '.2f')} s, cosine to the reference min {f(cos, '.6f')}")

    compiled = f", torch.compile mode {row.compile_mode}" if row.compile_mode else ""
    return "\n".join([
        f"{row.model} @ {row.img_size}, batch {row.batch_size}, {row.device}{compiled}: {row.gmacs:.1f} GMACs/image, "
        f"peak memory {f(row.peak_memory_gib, '.2f')} GiB",
        f"  (a) reference: {f(row.reference_ips, '.2f')} img/s",
        path("(b) encoder, SDPA", row.encoder_ips, row.speedup, row.mfu, row.encoder_first_s, row.cosine_min,
             row.encoder_note),
        f"  (c) whole extraction: n/a ({row.extraction_note})" if row.extraction_ips is None else
        f"  (c) whole extraction ({row.attention}): {row.extraction_ips:.2f} img/s "
        + (f"({100 * row.extraction_ratio:.0f} % of the encoder with the same attention)" if row.extraction_ratio
           else "(no encoder path above ran the same attention)"),
        path("(d) segment-anything-fast", row.sam_fast_ips, row.sam_fast_speedup, row.sam_fast_mfu,
             row.sam_fast_first_s, row.sam_fast_cosine_min, row.sam_fast_note),
        path(f"(e) encoder, FlexAttention ({row.flex_attention or 'flex'})", row.flex_ips, row.flex_speedup,
             row.flex_mfu, row.flex_first_s, row.flex_cosine_min, row.flex_note),
    ])


def rows_as_dicts(rows: list[BenchRow]) -> list[dict]:
    return [{**asdict(r), "speedup": r.speedup, "sam_fast_speedup": r.sam_fast_speedup, "flex_speedup": r.flex_speedup,
             "extraction_ratio": r.extraction_ratio} for r in rows]
