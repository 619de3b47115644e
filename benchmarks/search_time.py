"""Time similarity search (samembed.search) against its floors, on generated vectors.

    python benchmarks/search_time.py                       # the issue's sizes
    python benchmarks/search_time.py --items 200000 --cell-images 2000   # smaller, same arithmetic

Three figures (each in a fresh process, so its peak RSS is its own), with the floors beside them:

1. exact top-100 over ``--items`` x 256 float16 pooled vectors stored in a cache group (Blosc zstd,
   as extraction writes them): per query, every block is read, decompressed, converted to float32,
   normalised and multiplied by the query. Floors: the memory bandwidth floor (reading the float16
   bytes once, at the bandwidth measured by copying a large array here) and the arithmetic floor
   (2 N D flops at the matrix-product rate measured here). Also the same kernel over the vectors
   held in memory (no store, no decompression), which shows what the store's decoding costs.
2. map cells: ``--cell-images`` images x 16 x 16 cells x 256 (6.9 M vectors at 27,000): the index
   build (k-means, then every cell assigned and encoded), the query time, and recall@10 against
   exact search over 20 queries. Floor of the build: the assignment's 2 N L D flops (L lists).
3. few-shot ranking of ``--items`` pooled vectors from 10 positives and 10 negatives (the logistic
   regression, then one exact pass), against the same floor as 1.

Vectors are generated with structure (clusters of land covers, neighbouring cells alike), as
embeddings have: on isotropic noise no index finds neighbours, because there are none."""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DIM = 256
GRID = 16


def _write_group(cache: Path, items: int, grid: int, seed: int = 0) -> None:
    """A group 'bench' with ``items`` pooled vectors ('neck') and, when ``grid`` > 1, (items, 256,
    grid, grid) maps; written in shards, never whole in memory."""
    from samembed.cache.integrity import writable
    from samembed.cache.store import open_group_for_writing

    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (64, DIM)).astype(np.float32)
    shard = 1024 if grid == 1 else 256
    signature = {"encoder": {"encoder": "fake", "img_size": 1024}, "grid": grid, "dataset": "bench", "num_images": items}
    group = open_group_for_writing(cache, "bench", "fake@1024", signature, class_names=["a", "b"],
                                   image_ids=[f"{i}.tif" for i in range(items)], labels=np.zeros(items, np.int64),
                                   pooled_dims={"neck": DIM}, map_channels=DIM if grid > 1 else 1, grid=grid,
                                   shard_images=shard)
    for start in range(0, items, shard):
        n = min(shard, items - start)
        if grid > 1:
            # each image: a few land covers in blobs of 4 x 4 cells, plus noise
            cover = rng.integers(0, 64, (n, grid // 4, grid // 4)).repeat(4, 1).repeat(4, 2)
            maps = centres[cover] + 0.5 * rng.normal(0, 1, (n, grid, grid, DIM)).astype(np.float32)
            writable(group["grid"])[start:start + n] = np.moveaxis(maps, -1, 1).astype("float16")
            writable(group["neck"])[start:start + n] = maps.mean((1, 2)).astype("float16")
        else:
            pooled = centres[rng.integers(0, 64, n)] + 0.7 * rng.normal(0, 1, (n, DIM)).astype(np.float32)
            writable(group["neck"])[start:start + n] = pooled.astype("float16")
    writable(group["ok"])[:] = True
    writable(group["error"])[:] = np.full(items, "", dtype=object)
    writable(group["valid_hw"])[:] = np.full((items, 2), 1024, np.int32)
    writable(group["orig_hw"])[:] = np.full((items, 2), 1024, np.int32)
    if grid == 1:
        writable(group["grid"])[:] = np.zeros((items, 1, 1, 1), "float16")
    writable(group["done"])[:] = True


def _peak_mib() -> float:
    """This process's peak RSS (VmHWM: unlike ru_maxrss it does not carry the parent's across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _floors(items: int) -> dict:
    """Measured here: memory bandwidth (copying 512 MiB) and float32 matrix-product rate."""
    import torch

    a = np.ones(1 << 27, np.float32)
    b = np.empty_like(a)
    best = min(_timed(lambda: np.copyto(b, a)) for _ in range(3))
    bandwidth = 2 * a.nbytes / best  # read + write
    x, w = torch.randn(65536, DIM), torch.randn(DIM, 64)
    rate = 2 * 65536 * DIM * 64 / min(_timed(lambda: x @ w) for _ in range(5))
    return {"bandwidth_gb_s": bandwidth / 1e9, "matmul_gflops": rate / 1e9,
            "read_floor_ms": items * DIM * 2 / bandwidth * 1e3, "flop_floor_ms": 2 * items * DIM / rate * 1e3}


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def phase_exact(cache: str, queries: int) -> dict:
    import torch

    from samembed.cache import open_cache
    from samembed.search import search
    from samembed.search.space import Space

    group = open_cache(cache)
    first = _timed(lambda: search(group, [1], k=100, index="exact"))  # reads ids and flags once per opened group
    before = _peak_mib()
    times = [_timed(lambda q=q: search(group, [q * 997 % 1000], k=100, index="exact")) for q in range(queries)]
    out = {"exact_query_ms": [round(t * 1e3) for t in times], "exact_peak_rss_mib": round(_peak_mib()),
           "first_query_ms": round(first * 1e3),
           "rss_before_mib": round(before)}
    space = Space(group)
    held = group.group["neck"][:]  # the float16 vectors in memory
    q = torch.nn.functional.normalize(torch.randn(DIM), dim=0)

    def in_memory():
        best = torch.empty(0)
        for lo in range(0, len(held), space.block_rows):
            x = torch.from_numpy(held[lo:lo + space.block_rows]).float()
            scores = (x @ q) / torch.linalg.vector_norm(x, dim=1)  # as Block.scores
            best = torch.topk(torch.cat([best, torch.topk(scores, 100).values]), 100).values

    out["in_memory_query_ms"] = [round(_timed(in_memory) * 1e3) for _ in range(3)]
    times = [_timed(lambda s=s: search(group, list(range(s, s + 10)), list(range(500 + s, 510 + s)), mode="fewshot",
                                       k=100, index="exact")) for s in (0, 20)]
    out["fewshot_ms"] = [round(t * 1e3) for t in times]
    return out


def phase_cells(cache: str, queries: int) -> dict:
    from samembed.cache import open_cache
    from samembed.search import search
    from samembed.search.index import open_index
    from samembed.search.space import Space

    group = open_cache(cache)
    t0 = time.perf_counter()
    result = search(group, [0], granularity="cell", k=10, index="approximate")
    build = time.perf_counter() - t0
    meta = open_index(Space(group, "cell")).meta
    recalls, approx_ms, exact_ms = [], [], []
    rows = np.linspace(1, group.num_images - 1, queries).astype(int)
    for row in rows:
        t = time.perf_counter()
        a = search(group, [int(row)], granularity="cell", k=10, index="approximate").hits
        approx_ms.append(round((time.perf_counter() - t) * 1e3))
        if len(exact_ms) < 3:  # exact over every cell is the slow path: a few suffice for its time
            t = time.perf_counter()
        e = search(group, [int(row)], granularity="cell", k=10, index="exact").hits
        if len(exact_ms) < 3:
            exact_ms.append(round((time.perf_counter() - t) * 1e3))
        key = lambda h: set(zip(h["row"], h["cell_y"], h["cell_x"]))  # noqa: E731
        recalls.append(len(key(a) & key(e)) / 10)
    assert len(result.hits) == 10
    return {"cells": meta["vectors"], "index": meta["type"], "nprobe": meta["nprobe"],
            "calibrated_recall_at_10": meta["recall_at_10"], "build_s": meta["seconds"],
            "first_search_s": round(build, 1),
            "approximate_query_ms": approx_ms, "exact_query_ms": exact_ms, "recall_at_10": float(np.mean(recalls)),
            "peak_rss_mib": round(_peak_mib())}


def _run(phase: str, cache: Path, queries: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--phase", phase, "--cache", str(cache), "--queries", str(queries)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--cell-images", type=int, default=27_000)
    parser.add_argument("--queries", type=int, default=5)
    parser.add_argument("--phase", choices=["exact", "cells"])
    parser.add_argument("--cache")
    parser.add_argument("--work", help="folder for the generated caches (default: a temporary one)")
    args = parser.parse_args()
    if args.phase:
        fn = phase_exact if args.phase == "exact" else phase_cells
        print(json.dumps(fn(args.cache, args.queries)))
        return
    from samembed.threads import stage_threads

    work = Path(args.work or tempfile.mkdtemp(prefix="search-bench-"))
    print(f"threads: {stage_threads(os.cpu_count() or 1)} of {os.cpu_count()} cores (samembed.threads policy)")
    floors = _floors(args.items)
    print(f"measured here: memory bandwidth {floors['bandwidth_gb_s']:.1f} GB/s, float32 matrix product "
          f"{floors['matmul_gflops']:.0f} GFLOP/s")
    t0 = time.perf_counter()
    _write_group(work / "pooled", args.items, 1)
    print(f"generated {args.items:,} x {DIM} float16 pooled vectors in {time.perf_counter() - t0:.0f} s")
    exact = _run("exact", work / "pooled", args.queries)
    print(f"1. exact top-100 over {args.items:,} x {DIM} float16 (store, streamed): {exact['exact_query_ms']} ms a "
          f"query (the first on the opened group {exact['first_query_ms']} ms: it reads the ids and flags); peak RSS "
          f"{exact['exact_peak_rss_mib']} MiB (after the first query {exact['rss_before_mib']} MiB); "
          f"floors: read of {args.items * DIM * 2 / 1e6:.0f} MB at the bandwidth {floors['read_floor_ms']:.0f} ms, "
          f"arithmetic {floors['flop_floor_ms']:.0f} ms; the same kernel on the vectors in memory: "
          f"{exact['in_memory_query_ms']} ms")
    print(f"3. few-shot ranking of {args.items:,} from 10 positives and 10 negatives: {exact['fewshot_ms']} ms "
          f"(floor as 1: {max(floors['read_floor_ms'], floors['flop_floor_ms']):.0f} ms)")
    t0 = time.perf_counter()
    _write_group(work / "cells", args.cell_images, GRID, seed=1)
    cells = args.cell_images * GRID * GRID
    print(f"generated {args.cell_images:,} x {GRID} x {GRID} x {DIM} map cells ({cells / 1e6:.1f} M vectors) in "
          f"{time.perf_counter() - t0:.0f} s")
    result = _run("cells", work / "cells", args.queries * 4)
    lists = int(result["index"][3:].split(",")[0])
    print(f"2. map cells ({result['cells']:,} vectors): {result['index']} built in {result['build_s']} s (first search, loading or building it: {result['first_search_s']} s) "
          f"(floor of its assignment: {2 * cells * lists * DIM / floors['matmul_gflops'] / 1e9:.0f} s); query "
          f"{result['approximate_query_ms']} ms (nprobe {result['nprobe']}); exact {result['exact_query_ms']} ms "
          f"(floor: read of {cells * DIM * 2 / 1e9:.1f} GB at the bandwidth "
          f"{cells * DIM * 2 / floors['bandwidth_gb_s'] / 1e6:.0f} ms); recall@10 against exact "
          f"{result['recall_at_10']:.3f} over {args.queries * 4} queries (calibrated at build: "
          f"{result['calibrated_recall_at_10']}); peak RSS {result['peak_rss_mib']} MiB")


if __name__ == "__main__":
    main()
