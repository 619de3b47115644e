"""Beyond one process (docs/distributed.md): extraction throughput with 1, 2, ... processes launched
by torchrun, and the read throughput of a sweep from an S3 server against the local disk.

    python benchmarks/distributed_throughput.py --processes 1,2 --images 40 --img-size 224

1. Extraction: ``torchrun --standalone --nproc-per-node N -m samembed extract`` (through this
   script, to set ``--shard-images`` images per shard so that a few images make several shards) of the same
   synthetic EuroSAT-like tiles into a fresh cache for each N, with a SAM of a published shape and
   random weights (``--variant``; the cost is that of the real model), one thread per process on
   the CPU (``--device cpu``, gloo) or one GPU per process (``--device auto`` on a machine with
   several GPUs). Prints images per second of the encoding loop (the slowest rank's) and of the
   whole command (process start, planning and the barriers included), and the speed-up over one
   process. On the CPU the processes share the machine's cores: the ceiling is min(N, cores).
2. Sweep reads: the same generated cache (``--sweep-images`` images, 256-d vectors and 256 x G x G
   grid maps) written to a local folder and to moto's S3-compatible server on loopback; times
   reading every array a sweep reads (through zarr's FsspecStore over s3fs, as samembed does, and
   through obstore's store where it is installed, for comparison), then a sweep of a pooled and a
   grid head from each. The S3 figures include HTTP on loopback and moto's own (Python) cost: a
   real object store is slower per request and faster per byte; take them as an order of magnitude.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def extraction(args, tmp: Path) -> None:
    import samembed
    from samembed.encoders.sam_checkpoint import VARIANTS

    dim, depth, heads, glob = VARIANTS[args.variant]
    ckpt = samembed.write_tiny_checkpoint(tmp / "sam.pth", embed_dim=dim, depth=depth, num_heads=heads,
                                          global_attn_indexes=glob, out_chans=256)
    per_class = max(1, args.images // 10)
    data = samembed.make_synthetic_dataset(tmp / "data", images_per_class=per_class)
    n = per_class * 10
    print(f"extraction: {args.variant} random weights, {n} images at {args.img_size}, batch {args.batch_size}, "
          f"--workers {args.workers}, --device {args.device}, {os.cpu_count()} CPUs, 1 thread per process")
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(p for p in [str(ROOT), os.environ.get("PYTHONPATH", "")] if p)}
    base = None
    for processes in [int(p) for p in args.processes.split(",")]:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
                   __file__, "--as-samembed", str(args.shard_images), "extract", "eurosat", "--data-dir", str(data), "--checkpoint", str(ckpt),
                   "--img-size", str(args.img_size), "--batch-size", str(args.batch_size), "--workers",
                   str(args.workers), "--device", args.device, "--cache-dir", str(tmp / f"cache-{processes}"), "-q"]
        t0 = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if done.returncode != 0:
            sys.exit(f"torchrun with {processes} processes failed:\n{done.stderr[-3000:]}")
        found = re.search(r"encoded (\d+) images in ([\d.]+) s", done.stdout)
        encoded, seconds = int(found.group(1)), float(found.group(2))
        ips = encoded / seconds
        base = base or ips
        print(f"  {processes} process(es): encoding {ips:6.2f} img/s ({encoded} in {seconds:.1f} s), whole command "
              f"{encoded / wall:6.2f} img/s ({wall:.1f} s), speed-up {ips / base:.2f}x")


def _timed(function, repeats: int):
    best = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        value = function()
        elapsed = time.perf_counter() - t0
        best = elapsed if best is None else min(best, elapsed)
    return best, value


def sweep_reads(args, tmp: Path) -> None:
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the server's line per request

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        os.environ.update({"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                           "AWS_DEFAULT_REGION": "us-east-1"})
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="bench")
        _sweep_reads(args, tmp, endpoint)
    finally:
        server.stop()


def _sweep_reads(args, tmp: Path, endpoint: str) -> None:
    import numpy as np

    import samembed
    from samembed.cache.synthetic import write_embedding_cache

    local, remote = tmp / "cache", "s3://bench/cache"
    per_class = max(1, args.sweep_images // 10)
    shape = dict(classes=10, per_class=per_class, dim=256, grid=args.grid)
    t0 = time.perf_counter()
    write_embedding_cache(local, **shape)
    t_local = time.perf_counter() - t0
    t0 = time.perf_counter()
    write_embedding_cache(remote, **shape)
    t_remote = time.perf_counter() - t0
    arrays = ("labels", "ok", "neck", "trunk", "grid")
    group = samembed.open_cache(local, "eurosat")
    mib = sum(group.read(a).nbytes for a in arrays) / 2**20
    print(f"sweep reads: {per_class * 10} images, 256-d vectors and 256 x {args.grid} x {args.grid} grid maps "
          f"({mib:.1f} MiB decoded, {group.nbytes_stored() / 2**20:.1f} MiB stored); written in {t_local:.2f} s "
          f"locally, {t_remote:.2f} s to S3 (moto on {endpoint})")

    def read_all(where):
        g = samembed.open_cache(where, "eurosat")
        return [g.read(a) for a in arrays]

    readers = {"local disk": lambda: read_all(local), "S3, FsspecStore (s3fs)": lambda: read_all(remote)}
    try:
        import zarr
        from obstore.store import S3Store
        from zarr.storage import ObjectStore

        def read_obstore():
            store = S3Store("bench", prefix="cache/eurosat.zarr", endpoint=endpoint, region="us-east-1",
                            access_key_id="bench", secret_access_key="bench", client_options={"allow_http": True})
            g = zarr.open_group(ObjectStore(store, read_only=True), path="fake-enc@64", mode="r")
            return [g[a][:] for a in arrays]

        readers["S3, ObjectStore (obstore)"] = read_obstore
    except ImportError:
        pass
    reference = None
    for name, reader in readers.items():
        seconds, values = _timed(reader, args.repeats)
        if reference is None:
            reference = values
        assert all(np.array_equal(a, b) for a, b in zip(values, reference)), name
        print(f"  read every array, {name:26s}: {seconds:6.3f} s, {mib / seconds:7.1f} MiB/s (best of {args.repeats})")

    common = dict(heads=["linear", "sam-conv"], splits=[0.5], seeds=1, epochs=1, device="cpu", progress=False)
    samembed.sweep("eurosat", cache_dir=local, runs_dir=tmp / "runs-warm-up", **common)  # imports, first calls
    times, metrics = {}, {}
    for name, where in (("local disk", local), ("S3", remote)):
        t0 = time.perf_counter()
        records = samembed.sweep("eurosat", cache_dir=where, runs_dir=tmp / f"runs-{name[:2]}", **common)
        times[name] = time.perf_counter() - t0
        print(f"  sweep linear + sam-conv (1 epoch), {name:10s}: {times[name]:6.2f} s, {len(records)} runs")
        metrics[name] = [r["metrics"] for r in records]
    assert metrics["S3"] == metrics["local disk"], "a sweep from S3 gave other records than from the local disk"
    print(f"  sweep from S3 / from local disk: {times['S3'] / times['local disk']:.2f}x the time")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--processes", default="1,2", help="comma-separated numbers of processes (GPUs on a GPU machine)")
    p.add_argument("--variant", default="vit_b")
    p.add_argument("--images", type=int, default=40)
    p.add_argument("--img-size", type=int, default=224)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--workers", type=int, default=0, help="loader workers per process (0: decode in the process)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--shard-images", type=int, default=4,
                   help="images per shard (the default, about 64 MiB of grid maps, would make one shard of a few images)")
    p.add_argument("--sweep-images", type=int, default=1000)
    p.add_argument("--grid", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--only", choices=["extract", "sweep"], default=None)
    args = p.parse_args()
    import torch

    print(f"torch {torch.__version__}, python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as tmp:
        if args.only in (None, "extract"):
            extraction(args, Path(tmp))
        if args.only in (None, "sweep"):
            sweep_reads(args, Path(tmp))


def as_samembed(shard_images: int, argv: list[str]) -> None:
    """``samembed <argv>`` with ``shard_images`` images per shard (the command line has no option
    for it: its default suits real datasets), as each process torchrun starts runs it."""
    import samembed.extraction.plan as plan
    from samembed.cli import main as samembed_main

    plan.default_shard_images = lambda *args: shard_images
    sys.argv = ["samembed", *argv]
    samembed_main()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--as-samembed"]:
        as_samembed(int(sys.argv[2]), sys.argv[3:])
    else:
        main()
