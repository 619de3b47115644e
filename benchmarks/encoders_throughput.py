"""Extraction throughput of every encoder on the same images, in one run.

    python benchmarks/encoders_throughput.py --images 20 --sam-img-size 224 --device cpu

Random weights of the published shapes (the cost is that of the real models): SAM vit_b (a
random-weight checkpoint with vit_b's shape), SAM 2.1 Hiera-T and Hiera-B+ (whole random models in
the official format, built by the sam2 package), VGG19, DINOv2 ViT-S/14 and ViT-B/14, DINOv3
ViT-S/16 and the satellite ViT-L/16, each at its own default input size (224) except SAM and SAM 2,
whose size is ``--sam-img-size`` (their native 1024 is about 20x the cost of 224); and Prithvi-EO-2.0
300M (ViT-L/16, 224) on the same tiles as 13-band Sentinel-2 rasters (``eurosat-ms``), beside SAM on
their s2-rgb composite; and Hiera-T again with ``--prompt-features`` (the whole map and the two
higher-resolution maps SAM 2's mask decoder reads). Prints whole-extraction images per second
(decode, preprocess, encode, write) and the cache bytes per image. ``--only TEXT`` keeps the rows
whose label contains TEXT."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

import samembed
from samembed.encoders.sam_checkpoint import VARIANTS


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=20)
    p.add_argument("--sam-img-size", type=int, default=1024)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--only", default="", help="only the rows whose label contains this text")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        per_class = max(1, args.images // 10)
        data = samembed.make_synthetic_dataset(tmp / "data", images_per_class=per_class)
        rasters = samembed.datasets.make_synthetic_rasters(tmp / "ms", images_per_class=per_class, size=64)
        dim, depth, heads, glob = VARIANTS["vit_b"]
        sam = samembed.write_tiny_checkpoint(tmp / "sam.pth", embed_dim=dim, depth=depth, num_heads=heads,
                                             global_attn_indexes=glob, out_chans=256)
        sam2 = {name: _sam2_checkpoint(tmp / f"{name}.pt", name) for name in ("hiera_t", "hiera_b+")}
        print(f"torch {torch.__version__}, device {args.device}, {torch.get_num_threads()} CPU threads, "
              f"{max(1, args.images // 10) * 10} synthetic 64 x 64 images, random weights")
        rgb = {"dataset": "eurosat", "data_dir": data}
        ms = {"dataset": "eurosat-ms", "data_dir": rasters}
        for label, where, encoder, model, checkpoint, size, options in (
            ("SAM vit_b", rgb, "sam", None, sam, args.sam_img_size, {}),
            ("SAM 2.1 Hiera-T", rgb, "sam2", None, sam2["hiera_t"], args.sam_img_size, {}),
            ("SAM 2.1 Hiera-T, prompt features", rgb, "sam2", None, sam2["hiera_t"], args.sam_img_size,
             {"prompt_features": True}),
            ("SAM 2.1 Hiera-B+", rgb, "sam2", None, sam2["hiera_b+"], args.sam_img_size, {}),
            ("VGG19", rgb, "vgg19", "random", None, None, {}),
            ("DINOv2 ViT-S/14", rgb, "dinov2", "vits14-random", None, None, {}),
            ("DINOv2 ViT-B/14", rgb, "dinov2", "vitb14-random", None, None, {}),
            ("DINOv3 ViT-S/16", rgb, "dinov3", "vits16-random", None, None, {}),
            ("DINOv3 ViT-L/16 sat", rgb, "dinov3", "vitl16-sat-random", None, None, {}),
            ("SAM vit_b, S2 RGB", ms, "sam", None, sam, args.sam_img_size, {"bands": "s2-rgb", "stretch": "fixed:0,3000"}),
            ("Prithvi 300M, 6 S2", ms, "prithvi", "300m-random", None, None, {}),
        ):
            if args.only not in label:
                continue
            cache = tmp / ("cache-prompt" if options.get("prompt_features") else "cache")  # another layout
            result = samembed.extract(where["dataset"], data_dir=where["data_dir"], encoder=encoder, model=model,
                                      checkpoint=checkpoint, img_size=size, cache_dir=cache, device=args.device,
                                      batch_size=args.batch_size, workers=args.workers, progress=False, **options)
            group = samembed.open_cache(cache, where["dataset"], result.group)
            print(f"{label:33s} {result.group:48s} {result.images_per_second:8.2f} img/s   "
                  f"{group.nbytes_stored() / result.num_images / 1024:7.1f} KiB per image (grid {group.attrs['grid']})")


def _sam2_checkpoint(path: Path, variant: str) -> Path:
    """A whole SAM 2.1 model of ``variant``'s shape with random weights, in the official format."""
    from samembed.encoders.sam2 import VARIANTS as SAM2_VARIANTS, Sam2Arch, build_model

    shape = SAM2_VARIANTS[variant]
    torch.manual_seed(0)
    model = build_model(Sam2Arch(variant, shape, (14, 14) if variant == "hiera_b+" else (7, 7), "2.1"), 1024)
    torch.save({"model": model.state_dict()}, path)
    return path


if __name__ == "__main__":
    main()
