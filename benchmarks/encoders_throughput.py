"""Extraction throughput of every encoder on the same images, in one run.

    python benchmarks/encoders_throughput.py --images 20 --sam-img-size 224 --device cpu

Random weights of the published shapes (the cost is that of the real models): SAM vit_b (a
random-weight checkpoint with vit_b's shape), VGG19, DINOv2 ViT-S/14 and ViT-B/14, each at its own
default input size (VGG19 and DINOv2: 224) except SAM, whose size is ``--sam-img-size`` (its
native 1024 is about 20x the cost of 224). Prints whole-extraction images per second (decode,
preprocess, encode, write) and the cache bytes per image."""

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
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = samembed.make_synthetic_dataset(tmp / "data", images_per_class=max(1, args.images // 10))
        dim, depth, heads, glob = VARIANTS["vit_b"]
        sam = samembed.write_tiny_checkpoint(tmp / "sam.pth", embed_dim=dim, depth=depth, num_heads=heads,
                                             global_attn_indexes=glob, out_chans=256)
        print(f"torch {torch.__version__}, device {args.device}, {torch.get_num_threads()} CPU threads, "
              f"{max(1, args.images // 10) * 10} synthetic 64 x 64 images, random weights")
        for label, encoder, model, checkpoint, size in (
            ("SAM vit_b", "sam", None, sam, args.sam_img_size), ("VGG19", "vgg19", "random", None, None),
            ("DINOv2 ViT-S/14", "dinov2", "vits14-random", None, None),
            ("DINOv2 ViT-B/14", "dinov2", "vitb14-random", None, None),
        ):
            result = samembed.extract("eurosat", data_dir=data, encoder=encoder, model=model, checkpoint=checkpoint,
                                      img_size=size, cache_dir=tmp / "cache", device=args.device,
                                      batch_size=args.batch_size, workers=args.workers, progress=False)
            group = samembed.open_cache(tmp / "cache", "eurosat", result.group)
            print(f"{label:16s} {result.group:26s} {result.images_per_second:8.2f} img/s   "
                  f"{group.nbytes_stored() / result.num_images / 1024:7.1f} KiB per image (grid {group.attrs['grid']})")


if __name__ == "__main__":
    main()
