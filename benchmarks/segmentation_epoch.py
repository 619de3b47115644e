"""Road segmentation at the real shapes: cache bytes per image and seconds per training epoch of
each decoder and the UNet.

    python benchmarks/segmentation_epoch.py --images 16 --size 600 --epochs 2

Generated road images (sides between half and one and a half times ``--size``, like the Cheng
dataset's 411-1428 pixels) are extracted at 1024 by a random-weight SAM whose neck has vit_b's
shape (256 x 64 x 64 maps; only 2 transformer blocks, since the encoder's cost is not what is
measured here), so the cache holds the real arrays: the full 64 x 64 map and 256 x 256 masks.
The decoders train on exactly what they would train on with vit_b. Seconds per epoch scale with
the number of training images (the Cheng split trains on 160)."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

import samembed
from samembed.datasets import make_synthetic_roads


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=16)
    p.add_argument("--size", type=int, default=600)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        n_val, n_test = max(1, args.images // 8), max(1, args.images // 4)
        counts = (args.images - n_val - n_test, n_val, n_test)
        data = make_synthetic_roads(tmp / "data", counts=counts, size=args.size)
        ckpt = samembed.write_tiny_checkpoint(tmp / "sam.pth", embed_dim=768, depth=2, num_heads=12,
                                              global_attn_indexes=(1,), out_chans=256)
        result = samembed.extract("road", data_dir=data, checkpoint=ckpt, img_size=1024, cache_dir=tmp / "cache",
                                  device=args.device, progress=False)
        group = samembed.open_cache(tmp / "cache", "road")
        print(f"torch {torch.__version__}, device {args.device} ({torch.get_num_threads()} threads), {args.images} "
              f"road images ({counts[0]} train), extraction {result.images_per_second:.2f} img/s (2-block encoder)")
        print(f"cache: {group.nbytes_stored() / args.images / 1024:.1f} KiB per road image "
              f"(grid {tuple(group.group['grid'].shape[1:])} float16, mask {tuple(group.group['mask'].shape[1:])} uint8)")
        for head in ("sam-conv", "sam-vit", "unet"):
            record = samembed.train_head("road", head=head, cache_dir=tmp / "cache", runs_dir=tmp / "runs",
                                         device=args.device, epochs=args.epochs)
            per_epoch = record["seconds_per_epoch"]
            print(f"{head:9s}: {per_epoch:7.2f} s per epoch on {counts[0]} images = {per_epoch / counts[0]:.3f} s per "
                  f"training image ({160 * per_epoch / counts[0]:.1f} s per epoch for the 160 Cheng training images)")


if __name__ == "__main__":
    main()
