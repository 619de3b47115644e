"""What the cache's integrity checks cost (issue 22): storing and reading a group with a CRC-32C
checksum on every chunk, NaN fill and every chunk written (samembed now), against the same arrays
without them (samembed before), in one run, interleaved, so the ratio holds whatever else the
machine is doing.

    python benchmarks/integrity_overhead.py --images 1024 --repeats 9

Arrays of a SAM vit_b group at grid 16: neck (N, 256), trunk (N, 768), grid (N, 256, 16, 16)
float16, shards of 512 images, written as the extraction's writer does (a shard at a time) and
read as a sweep does (pooled arrays whole, the grid chunk by chunk). The floor of the checks is
CRC-32C over the compressed bytes plus the NaN test of the first value of each row read (a missing
chunk makes whole rows NaN), measured here."""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import zarr
from zarr.codecs import BloscCodec

from samembed.cache.integrity import CheckedArray, compressors, fill_value, writable
from samembed.cache.layout import COMPRESSOR

SHARD, CHUNK = 512, 16
SHAPES = {"neck": (256,), "trunk": (768,), "grid": (256, 16, 16)}


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def make(folder: Path, n: int, checked: bool) -> zarr.Group:
    group = zarr.open_group(folder, mode="w")
    for name, shape in SHAPES.items():
        sharded = name == "grid"
        group.create_array(
            name, shape=(n, *shape), dtype="float16", chunks=(CHUNK if sharded else SHARD, *shape),
            shards=(SHARD, *shape) if sharded else None,
            compressors=compressors(COMPRESSOR, False) if checked else BloscCodec(cname="zstd", clevel=3, shuffle="shuffle"),
            fill_value=fill_value("float16") if checked else 0)
    return group


def store(group: zarr.Group, data: dict[str, np.ndarray], checked: bool) -> None:
    n = len(data["neck"])
    for name, values in data.items():
        array = writable(group[name]) if checked else group[name]
        for start in range(0, n, SHARD):
            array[start:start + SHARD] = values[start:start + SHARD]


def read(group: zarr.Group, checked: bool, done: np.ndarray) -> float:
    total = 0.0
    for name in SHAPES:
        array = CheckedArray(group[name], name, "bench", lambda: done) if checked else group[name]
        step = CHUNK if name == "grid" else len(done)
        for start in range(0, len(done), step):
            total += float(array[start:start + step][:, 0].sum())
    return total


def floor(folder: Path, data: dict[str, np.ndarray]) -> tuple[float, float]:
    """Seconds of CRC-32C over the stored bytes and of the NaN test of each row's first value."""
    import google_crc32c  # what zarr's crc32c codec computes with

    blobs = [p.read_bytes() for p in folder.rglob("*") if p.is_file() and p.name != "zarr.json"]
    t0 = time.perf_counter()
    for blob in blobs:
        google_crc32c.value(blob)
    crc = time.perf_counter() - t0
    t0 = time.perf_counter()
    for values in data.values():
        np.isnan(values.reshape(len(values), -1)[:, 0])
    return crc, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    data = {name: rng.normal(0, 1, (args.images, *shape)).astype("float16") for name, shape in SHAPES.items()}
    done = np.ones(args.images, bool)
    mib = sum(v.nbytes for v in data.values()) / 2**20
    times = {(stage, checked): [] for stage in ("store", "read") for checked in (False, True)}
    root = Path(tempfile.mkdtemp(prefix="integrity-"))
    try:
        for _ in range(args.repeats):
            for checked in (False, True):  # interleaved: load on the machine hits both alike
                folder = root / ("checked" if checked else "plain")
                shutil.rmtree(folder, ignore_errors=True)
                group = make(folder, args.images, checked)
                w0, c0 = time.perf_counter(), cpu()
                store(group, data, checked)
                times["store", checked].append((time.perf_counter() - w0, cpu() - c0))
                w0, c0 = time.perf_counter(), cpu()
                read(zarr.open_group(folder, mode="r"), checked, done)
                times["read", checked].append((time.perf_counter() - w0, cpu() - c0))
        crc, scan = floor(root / "checked", data)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"{args.images} images, {mib:.0f} MiB of float16 (neck, trunk, grid at 16), {args.repeats} repeats, medians")
    for stage in ("store", "read"):
        plain, checked = times[stage, False], times[stage, True]
        pw, pc = statistics.median(t[0] for t in plain), statistics.median(t[1] for t in plain)
        cw, cc = statistics.median(t[0] for t in checked), statistics.median(t[1] for t in checked)
        print(f"{stage:>5}: without checks {pw:.3f} s wall / {pc:.3f} s CPU; with {cw:.3f} s / {cc:.3f} s; "
              f"ratio wall {cw / pw:.3f}, CPU {cc / pc:.3f}")
    print(f"floor of the checks: CRC-32C of the stored bytes {crc * 1e3:.1f} ms, NaN test of each row's first "
          f"value {scan * 1e3:.2f} ms (reads only)")


if __name__ == "__main__":
    main()
