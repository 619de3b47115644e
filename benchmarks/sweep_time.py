"""Time a EuroSAT-sized sweep from the cache, and what the same sweep would cost if the encoder
ran at every epoch instead.

    python benchmarks/sweep_time.py --encoder-ips 0.06 --encoder-ips 92

27,000 generated 256-d embeddings in 10 classes; 9 splits (0.1 ... 0.9) x 3 seeds; heads linear,
mlp, logreg, knn (30 epochs for the torch heads); on the CPU. ``--encoder-ips`` are encoder
throughputs (images per second) to price the naive alternative with: by default the figure
measured by benchmarks/extract_throughput.py for vit_b at 1024 on 2 CPU cores, and the published
segment-anything-fast figure for vit_b on an A100 (reference.md section 5)."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from samembed import sweep
from samembed.cache.synthetic import write_embedding_cache

SPLITS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--heads", default="linear,mlp,logreg,knn")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--encoder-ips", type=float, action="append", default=None)
    args = p.parse_args()
    encoder_ips = args.encoder_ips or [0.06, 92.0]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        write_embedding_cache(tmp / "cache", classes=10, per_class=2700, dim=256, grid=2, noise=8.0)
        print(f"generated cache of 27,000 x 256 embeddings in {time.perf_counter() - t0:.1f} s")
        total, naive_images = 0.0, 0
        for head in args.heads.split(","):
            t0 = time.perf_counter()
            records = sweep("eurosat", heads=[head], splits=SPLITS, seeds=args.seeds, cache_dir=tmp / "cache",
                            runs_dir=tmp / "runs", device="cpu", epochs=args.epochs, progress=False)
            seconds = time.perf_counter() - t0
            total += seconds
            passes = args.epochs if records[0]["curves"] else 1  # torch heads see every image every epoch
            naive_images += len(records) * passes * 27_000
            accs = [r["metrics"]["accuracy"] for r in records]
            print(f"{head:7s}: {len(records)} runs in {seconds:7.1f} s ({seconds / len(records):.2f} s/run), "
                  f"accuracy {min(accs):.3f}-{max(accs):.3f}")
        print(f"whole sweep from the cache: {total:.1f} s ({total / 60:.1f} min)")
        for ips in encoder_ips:
            naive = naive_images / ips
            print(f"encoder at every epoch at {ips:g} img/s: {naive_images:,} encoder passes = {naive / 3600:,.1f} h "
                  f"({naive / total:,.0f} x the cached sweep)")


if __name__ == "__main__":
    main()
