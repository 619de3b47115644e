"""Extraction throughput and cache size per image, with a randomly initialised SAM of a published
shape (vit_b by default) on synthetic 64 x 64 EuroSAT-like tiles.

    python benchmarks/extract_throughput.py --variant vit_b --images 32 --img-size 1024 --device auto

Prints images per second for the whole extraction (decode, preprocess, encode, write) and the
encoder alone, and the bytes per image on disk for each grid size asked for. Random weights give
the right cost; compressed sizes are indicative only (real embeddings compress differently)."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

import samembed
from samembed.cache import open_cache
from samembed.devices import compute_dtype, resolve_device
from samembed.encoders.sam_checkpoint import VARIANTS


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variant", default="vit_b", choices=sorted(VARIANTS))
    p.add_argument("--images", type=int, default=32)
    p.add_argument("--img-size", type=int, default=1024)
    p.add_argument("--grids", default="16,64")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--device", default="auto")
    args = p.parse_args()

    dev = resolve_device(args.device)
    dim, depth, heads, glob = VARIANTS[args.variant]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ckpt = samembed.write_tiny_checkpoint(tmp / "sam.pth", embed_dim=dim, depth=depth, num_heads=heads,
                                              global_attn_indexes=glob, out_chans=256)
        per_class = max(1, args.images // 10)
        data = samembed.make_synthetic_dataset(tmp / "data", images_per_class=per_class)
        n = per_class * 10
        print(f"device {dev} ({torch.cuda.get_device_name(dev) if dev.type == 'cuda' else torch.get_num_threads()} "
              f"{'' if dev.type == 'cuda' else 'threads'}), torch {torch.__version__}, {args.variant} random weights, "
              f"{n} images at {args.img_size}, compute {compute_dtype(dev)}")

        spec = samembed.create_encoder("sam", checkpoint=ckpt, img_size=args.img_size)
        model = spec.build(dev)
        bs = args.batch_size or (16 if dev.type == "cuda" else 4)
        images = torch.zeros(bs, 3, args.img_size, args.img_size, dtype=torch.uint8, device=dev)
        valid = torch.full((bs, 2), args.img_size, device=dev)
        autocast = torch.autocast(dev.type, dtype=compute_dtype(dev), enabled=dev.type == "cuda")
        with torch.inference_mode(), autocast:
            model(images, valid)  # warm-up
            if dev.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            reps = max(1, n // bs)
            for _ in range(reps):
                model(images, valid)
            if dev.type == "cuda":
                torch.cuda.synchronize()
        encoder_ips = reps * bs / (time.perf_counter() - t0)
        print(f"encoder only:     {encoder_ips:8.2f} img/s (batch {bs})")
        del model

        # A grid larger than the feature map (e.g. 16 at 224, whose map is 14 x 14) is clipped to it.
        for grid in sorted({min(int(g), spec.map_size) for g in args.grids.split(",")}):
            cache = tmp / f"cache{grid}"
            result = samembed.extract("eurosat", data_dir=data, checkpoint=ckpt, img_size=args.img_size, grid=grid,
                                      cache_dir=cache, device=args.device, batch_size=args.batch_size,
                                      workers=args.workers, progress=False)
            group = open_cache(cache, "eurosat")
            per_image = group.nbytes_stored() / n
            print(f"whole extraction: {result.images_per_second:8.2f} img/s, grid {grid:2d}: "
                  f"{per_image / 1024:8.1f} KiB per image on disk "
                  f"({per_image * 27000 / 2**30:.2f} GiB for all of EuroSAT)")


if __name__ == "__main__":
    main()
