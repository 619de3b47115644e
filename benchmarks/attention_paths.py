"""SAM's encoder through each attention path, timed alternately in one process.

    python benchmarks/attention_paths.py --variant vit_b --img-size 1024 --batch-size 1 --device cpu

Paths (random weights of the published shape, the same input):

- ``reference``: segment_anything's own ``Attention`` and ``Block`` (the bias added to an explicit
  attention matrix; windowed blocks padded before the q/k/v projection);
- ``sdpa-padded``: SDPA with the bias materialised, windowed blocks padded as segment_anything
  does (issue 7's path);
- ``sdpa``: the same, windowed blocks projecting only the image's tokens (samembed's default);
- ``flex,sdpa`` and ``flex,flex``: FlexAttention in the global blocks, and in the windowed ones.

Each path runs once to warm up (FlexAttention compiles there), then the paths take turns for
``--reps`` rounds and the fastest round counts: on the CPU process time on one thread (least
disturbed by other processes on the machine), on CUDA wall time in bf16 autocast. Prints seconds
per batch, the ratio to ``sdpa-padded`` and the largest difference to ``reference``."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from samembed.devices import compute_dtype, resolve_device
from samembed.encoders import create_encoder, write_tiny_checkpoint
from samembed.encoders.attention import flex_problem
from samembed.encoders.fast_attention import use_fast_attention
from samembed.encoders.sam_checkpoint import VARIANTS

PATHS = ("reference", "sdpa-padded", "sdpa", "flex,sdpa", "flex,flex")


def build(spec, path: str, dev: torch.device) -> torch.nn.Module:
    vit = spec.build_vit()
    if path != "reference":
        glob, windowed = ("sdpa", "sdpa") if path.startswith("sdpa") else path.split(",")
        use_fast_attention(vit, glob, windowed)
        if path == "sdpa-padded":
            for block in vit.blocks:
                if block.window_size:
                    del block.forward  # segment_anything's Block.forward: pad, partition, attention, unpartition
    return vit.to(dev).eval()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variant", default="vit_b", choices=sorted(VARIANTS))
    p.add_argument("--img-size", type=int, default=1024)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--paths", default=",".join(PATHS).replace("flex,sdpa", "flex-sdpa").replace("flex,flex", "flex-flex"),
                   help="comma-separated, flex paths written flex-sdpa, flex-flex")
    p.add_argument("--device", default="auto")
    args = p.parse_args()

    dev = resolve_device(args.device)
    if dev.type == "cpu":
        torch.set_num_threads(1)
    dtype = compute_dtype(dev)
    paths = [name.replace("-sdpa", ",sdpa").replace("-flex", ",flex") for name in args.paths.split(",")]
    dim, depth, heads, glob = VARIANTS[args.variant]
    problem = flex_problem(dev, dim // heads, dtype)
    if problem:
        print(f"leaving out the flex paths: {problem}")
        paths = [name for name in paths if "flex" not in name]
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = write_tiny_checkpoint(Path(tmp) / "sam.pth", embed_dim=dim, depth=depth, num_heads=heads,
                                     global_attn_indexes=glob, out_chans=256)
        spec = create_encoder("sam", checkpoint=ckpt, img_size=args.img_size)
        models = {name: build(spec, name, dev) for name in paths}
    x = torch.randn(args.batch_size, 3, args.img_size, args.img_size, device=dev)
    clock = time.process_time if dev.type == "cpu" else time.perf_counter

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    times = {name: [] for name in paths}
    with torch.inference_mode(), torch.autocast(dev.type, dtype=dtype, enabled=dtype != torch.float32):
        outputs = {name: model(x).float() for name, model in models.items()}  # warm-up and compilation
        for _ in range(args.reps):
            for name, model in models.items():
                sync()
                t0 = clock()
                model(x)
                sync()
                times[name].append(clock() - t0)
    best = {name: min(t) for name, t in times.items()}
    base = best.get("sdpa-padded")
    grid = args.img_size // 16
    print(f"{args.variant} @ {args.img_size} ({grid}-token grid, windows padded to {-(-grid // 14) * 14}), batch "
          f"{args.batch_size}, {dev.type} {str(dtype).removeprefix('torch.')}, {clock.__name__}, fastest of {args.reps}:")
    for name in paths:
        diff = (outputs[name] - outputs["reference"]).abs().max().item() if "reference" in outputs else float("nan")
        ratio = f", x{best[name] / base:.3f} of sdpa-padded" if base else ""
        print(f"  {name:12s} {best[name]:8.3f} s{ratio}; largest difference to reference {diff:.1e}")


if __name__ == "__main__":
    main()
