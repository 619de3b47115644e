"""Every GPU measurement of issue 17 in one command, resumable in pieces.

    PYTHONPATH=. python benchmarks/gpu_suite.py --out gpu-results --max-minutes 9

On the first CUDA device: ``pytest -m gpu``; ``samembed bench`` for vit_b, vit_l and vit_h at
1024, 448 and 224 with batches of 8, 16, 32 and 64 (bf16; (a) the float32 reference in the batch-8
rows; (d) segment-anything-fast where importable; (e) FlexAttention in the global blocks); (e)
again with FlexAttention in the windowed blocks too (the setting that decides
``encoders.attention.WINDOWED_AUTO``); torch.compile in the max-autotune and reduce-overhead (CUDA
graphs) modes with the compile time apart; every attention path of the whole encoder side by side
(``benchmarks/attention_paths.py``: the windowed blocks with and without projecting the padding,
with SDPA and with FlexAttention); a whole ``samembed extract`` of 2,000 generated
EuroSAT tiles at 1024 with vit_b, and a profiled one whose trace gives the share of time in
decode, copy, encode and write.

Writes OUT/gpu_suite.json (every figure, the command of each step, versions) and
OUT/gpu_suite.md (the tables for docs/benchmarks.md), after every step. Each step runs in its own
process; steps already in the JSON are skipped, so running the same command again goes on where
``--max-minutes`` stopped it. ``--quick`` runs a reduced suite (a tiny model; on the CPU where no
CUDA device is there) to check the script itself: ``python benchmarks/gpu_suite.py --quick``."""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("vit_b", "vit_l", "vit_h")
SIZES = (1024, 448, 224)
BATCHES = (8, 16, 32, 64)


# ----------------------------------------------------------------------------------- the steps


def steps(quick: bool, device: str) -> dict[str, list[str]]:
    """Step name -> the command it runs (in ROOT)."""
    py = sys.executable
    own = [py, str(Path(__file__).resolve()), "--device", device] + (["--quick"] if quick else [])
    bench = [py, "-m", "samembed", "bench", "--device", device]
    if quick:
        tiny = ["--checkpoint", "{tiny}", "--sizes", "64", "--images", "10", "--workers", "0"]
        found = {"bench:tiny:b2": bench + tiny + ["--batch-size", "2"],
                 "bench-windowed-flex:tiny": bench + tiny + ["--batch-size", "2", "--no-reference", "--attention",
                                                             "auto,flex"],
                 "compile:default:tiny": bench + tiny + ["--batch-size", "2", "--no-reference", "--compile"]}
    else:
        found = {}
        for model in MODELS:
            for batch in BATCHES:
                found[f"bench:{model}:b{batch}"] = bench + [
                    "--models", model, "--sizes", ",".join(map(str, SIZES)), "--images", str(max(32, 4 * batch)),
                    "--batch-size", str(batch)] + ([] if batch == BATCHES[0] else ["--no-reference"])
        for model in ("vit_b", "vit_h"):
            found[f"bench-windowed-flex:{model}"] = bench + [
                "--models", model, "--sizes", ",".join(map(str, SIZES)), "--images", "64", "--batch-size", "16",
                "--no-reference", "--attention", "auto,flex"]
        for mode in ("max-autotune", "reduce-overhead"):
            for model in ("vit_b", "vit_h"):
                found[f"compile:{mode}:{model}"] = bench + [
                    "--models", model, "--sizes", "1024", "--images", "64", "--batch-size", "16", "--no-reference",
                    "--compile-mode", mode]
    paths = [py, "benchmarks/attention_paths.py", "--device", device]
    for model in (("vit_b",) if quick else ("vit_b", "vit_h")):
        found[f"attention-paths:{model}"] = paths + (["--variant", model, "--img-size", "256", "--reps", "2"] if quick
                                                     else ["--variant", model, "--img-size", "1024", "--batch-size", "16"])
    found["extract"] = own + ["--run-step", "extract"]
    found["extract-profile"] = own + ["--run-step", "extract-profile"]
    found["pytest-gpu"] = [py, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", "tests"]
    return found


def extraction_step(name: str, quick: bool, device: str, out: Path) -> dict:
    """A whole extraction of generated EuroSAT tiles (vit_b's shape at 1024; ``--quick``: a tiny
    model at 64); ``extract-profile`` under the profiler, summarised into shares of the wall time."""
    import torch

    import samembed
    from samembed.datasets import make_synthetic_dataset
    from samembed.encoders.sam_checkpoint import VARIANTS

    profiled = name == "extract-profile"
    per_class = (2 if profiled else 4) if quick else (32 if profiled else 200)  # 10 classes
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if quick:
            ckpt, size = samembed.write_tiny_checkpoint(tmp / "sam.pth"), 64
        else:
            dim, depth, heads, glob = VARIANTS["vit_b"]
            ckpt = samembed.write_tiny_checkpoint(tmp / "sam.pth", embed_dim=dim, depth=depth, num_heads=heads,
                                                  global_attn_indexes=glob, out_chans=256)
            size = 1024
        data = make_synthetic_dataset(tmp / "data", images_per_class=per_class)
        options = dict(data_dir=data, checkpoint=ckpt, img_size=size, cache_dir=tmp / "cache", device=device,
                       progress=False, **({"workers": 0} if quick else {}))
        if not profiled:
            result = samembed.extract("eurosat", **options)
            return {"images": result.encoded, "seconds": result.seconds, "images_per_second": result.images_per_second,
                    "img_size": size, "model": "tiny" if quick else "vit_b", **_run_log(tmp / "cache")}
        return _profiled_extraction(options, out, torch) | {"img_size": size, "model": "tiny" if quick else "vit_b"}


def _run_log(cache: Path) -> dict:
    import samembed

    run = samembed.open_cache(cache, "eurosat").extraction_runs[-1]
    return {k: run.get(k) for k in ("batch_size", "workers", "attention", "device")}


def _profiled_extraction(options: dict, out: Path, torch) -> dict:
    """Shares of the wall time: waiting for decoded images (the main thread blocked on the
    loader), host-device copies and encoder kernels (device time), the encoder's calls on the
    host, and the writer thread's busy time. They overlap by design, so they need not add up."""
    import samembed
    from samembed.cache.writer import ShardWriter
    from samembed.encoders.sam import SamImageEncoder
    from torch.profiler import ProfilerActivity, profile, record_function

    busy = [0.0]

    def timed(method):
        def run(self, *args):
            t0 = time.perf_counter()
            try:
                return method(self, *args)
            finally:
                busy[0] += time.perf_counter() - t0
        return run

    forward = SamImageEncoder.forward

    def labelled(self, *args):
        with record_function("samembed.encode"):
            return forward(self, *args)

    ShardWriter._add, ShardWriter._save_unfinished = timed(ShardWriter._add), timed(ShardWriter._save_unfinished)
    SamImageEncoder.forward = labelled
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if options["device"].startswith("cuda") else [])
    with profile(activities=activities) as prof:
        t0 = time.perf_counter()
        result = samembed.extract("eurosat", **options)
        wall = time.perf_counter() - t0
    trace = out / "extract_trace.json"
    prof.export_chrome_trace(str(trace))
    events = [e for e in json.loads(trace.read_text()).get("traceEvents", []) if e.get("ph") == "X"]
    with gzip.open(str(trace) + ".gz", "wt") as f:  # the trace itself, for a closer look
        json.dump({"traceEvents": events}, f)
    trace.unlink()

    def total(keep) -> float:
        return sum(e.get("dur", 0) for e in events if keep(e)) / 1e6

    seconds = {
        "decode_wait": total(lambda e: e["name"].startswith("enumerate(DataLoader)")),
        "copy": total(lambda e: e.get("cat") == "gpu_memcpy"),
        "encode_kernels": total(lambda e: e.get("cat") == "kernel"),
        "encode_calls": total(lambda e: e["name"] == "samembed.encode"),
        "write": busy[0],
    }
    return {"images": result.encoded, "wall_seconds": wall, "images_per_second": result.encoded / wall,
            "seconds": seconds, "share": {k: v / wall for k, v in seconds.items()},
            "trace": "extract_trace.json.gz", **_run_log(options["cache_dir"])}


def environment(device: str) -> dict:
    import torch

    from samembed.version import __version__

    env = {"python": platform.python_version(), "torch": torch.__version__, "samembed": __version__,
           "host": platform.node(), "date": time.strftime("%Y-%m-%d")}
    try:
        env["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                       text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        env["commit"] = None
    for name in ("triton", "segment_anything_fast"):
        try:
            module = __import__(name)
            env[name] = getattr(module, "__version__", "importable")
        except ImportError:
            env[name] = None
    dev = torch.device(device)
    if dev.type == "cuda":
        env["device"] = torch.cuda.get_device_name(dev)
        env["cuda"] = torch.version.cuda
    else:
        env["device"] = f"cpu ({os.cpu_count()} cores)"
    from samembed.encoders.attention import flex_problem

    dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    env["flexattention"] = flex_problem(dev, 64, dtype) or "runs"
    return env


# ------------------------------------------------------------------------------------ running


def pick_device(quick: bool) -> str:
    """The first CUDA device; with ``--quick`` the CPU where there is none; else the end, in one line."""
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if quick:
        return "cpu"
    sys.exit("gpu_suite: no CUDA device here; the suite measures a GPU "
             "(python benchmarks/gpu_suite.py --quick checks the script on the CPU)")


def run_step(name: str, command: list[str], out: Path, timeout: float | None) -> dict:
    """Run one step in its own process; its figures (bench JSON, a step's own JSON) and its end."""
    result_file = out / "steps" / (name.replace(":", "_") + ".json")
    result_file.parent.mkdir(parents=True, exist_ok=True)
    result_file.unlink(missing_ok=True)
    command = [c.replace("{tiny}", str(out / "tiny_sam.pth")) for c in command]
    if "bench" in command:
        command = command + ["--json", str(result_file)]
    elif "--run-step" in command:
        command = command + ["--out", str(out), "--result", str(result_file)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    t0 = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as err:
        return {"status": "timeout", "seconds": time.perf_counter() - t0, "command": _shown(command),
                "output_tail": _tail((err.stdout or b"").decode() if isinstance(err.stdout, bytes) else err.stdout)}
    record = {"status": "ok" if done.returncode == 0 else f"exit {done.returncode}",
              "seconds": round(time.perf_counter() - t0, 1), "command": _shown(command),
              "output_tail": _tail(done.stdout + done.stderr)}
    if result_file.exists():
        record["result"] = json.loads(result_file.read_text())
    return record


def _shown(command: list[str]) -> str:
    shown = ["python" if c == sys.executable else c for c in command]
    return " ".join(shown).replace(str(ROOT) + os.sep, "")


def _tail(text: str | None, lines: int = 15) -> str:
    return "\n".join((text or "").strip().splitlines()[-lines:])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("gpu-results"))
    p.add_argument("--device", default=None, help="default: cuda; with --quick, the CPU where no CUDA device is there")
    p.add_argument("--quick", action="store_true", help="a reduced suite with a tiny model (for the CPU)")
    p.add_argument("--max-minutes", type=float, default=None, help="stop starting steps after this long")
    p.add_argument("--only", default=None, help="comma-separated step names or prefixes (bench, extract, ...)")
    p.add_argument("--again", action="store_true", help="run steps that already have figures once more")
    p.add_argument("--run-step", default=None, help=argparse.SUPPRESS)
    p.add_argument("--result", type=Path, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    args.device = args.device or pick_device(args.quick)
    if args.run_step:  # inside a step's own process
        args.result.write_text(json.dumps(extraction_step(args.run_step, args.quick, args.device, args.out), indent=2))
        return

    started = time.monotonic()
    path = args.out / "gpu_suite.json"
    suite = json.loads(path.read_text()) if path.exists() else {"steps": {}}
    fresh_environment = False
    if args.quick and not (args.out / "tiny_sam.pth").exists():
        import samembed

        samembed.write_tiny_checkpoint(args.out / "tiny_sam.pth")
    wanted = [w.strip() for w in args.only.split(",")] if args.only else None
    for name, command in steps(args.quick, args.device).items():
        if wanted and not any(name == w or name.startswith(w + ":") or name.startswith(w + "-") for w in wanted):
            continue
        if name in suite["steps"] and suite["steps"][name]["status"] == "ok" and not args.again:
            continue
        left = None if args.max_minutes is None else args.max_minutes * 60 - (time.monotonic() - started)
        if left is not None and left < 30:
            print(f"stopped before {name}: --max-minutes reached; run the same command again to go on", flush=True)
            break
        if not fresh_environment:  # the versions and device of the steps this command runs
            suite["environment"], fresh_environment = environment(args.device), True
        print(f"{name} ...", flush=True)
        record = run_step(name, command, args.out, left)
        if record["status"] == "timeout" and left is not None:
            print(f"{name}: cut off by --max-minutes; run the same command again to go on", flush=True)
            break
        suite["steps"][name] = record
        print(f"{name}: {record['status']} in {record['seconds']:.0f} s", flush=True)
        path.write_text(json.dumps(suite, indent=2))
        (args.out / "gpu_suite.md").write_text(markdown(suite))
    path.write_text(json.dumps(suite, indent=2))
    (args.out / "gpu_suite.md").write_text(markdown(suite))
    pending = [n for n in steps(args.quick, args.device) if n not in suite["steps"]
               and (not wanted or any(n.startswith(w) for w in wanted))]
    print(f"wrote {path} and {args.out / 'gpu_suite.md'}" + (f"; {len(pending)} steps still to run" if pending else ""))


# ------------------------------------------------------------------------------------ the tables


def _f(value, fmt=".1f", none="n/a") -> str:
    return none if value is None else format(value, fmt)


def _with_ratio(ips, ref) -> str:
    return "n/a" if ips is None else f"{ips:.1f}" + (f" (x{ips / ref:.2f})" if ref else "")


def markdown(suite: dict) -> str:
    env, done = suite.get("environment", {}), suite.get("steps", {})
    lines = ["# GPU suite (benchmarks/gpu_suite.py)", "",
             f"{env.get('device')}; torch {env.get('torch')}, CUDA {env.get('cuda')}, triton {env.get('triton')}, "
             f"samembed {env.get('samembed')} ({env.get('commit')}), segment_anything_fast "
             f"{env.get('segment_anything_fast') or 'not importable'}, FlexAttention: {env.get('flexattention')}; "
             f"{env.get('date')}.", ""]
    rows = [(name, r) for name, step in done.items() if name.startswith(("bench", "compile"))
            for r in (step.get("result") or [])]
    refs = {(r["model"], r["img_size"]): r["reference_ips"] for _, r in rows if r.get("reference_ips")}
    lines += ["## Encoder paths and whole extraction (`samembed bench`; bf16 on CUDA, float32 on the CPU)", "",
              "Images per second, (x ratio) to (a) segment_anything's float32 path one image at a time (measured in "
              "the batch-8 row of the same model and input).", "",
              "| step | model | input | batch | (a) reference | (b) SDPA | (d) segment-anything-fast | (e) FlexAttention "
              "| (e) kernels | (c) extraction (% of its encoder) | MFU (b) / (e) | cosine min (b) / (e) | first call s "
              "(b) / (e) | peak GiB (b) / (e) |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in rows:
        ref = refs.get((r["model"], r["img_size"]))
        d = _with_ratio(r.get("sam_fast_ips"), ref) if r.get("sam_fast_ips") else f"n/a ({r.get('sam_fast_note')})"
        e = _with_ratio(r.get("flex_ips"), ref) if r.get("flex_ips") else f"n/a ({r.get('flex_note')})"
        b = _with_ratio(r["encoder_ips"], ref) if r.get("encoder_ips") else f"n/a ({r.get('encoder_note')})"
        c = (f"n/a ({r.get('extraction_note')})" if r.get("extraction_ips") is None else
             f"{r['extraction_ips']:.1f} ({_f(r['extraction_ratio'] and 100 * r['extraction_ratio'], '.0f')} %, "
             f"{r.get('attention')})")
        lines.append(
            f"| {name} | {r['model']} | {r['img_size']} | {r['batch_size']} | {_f(r.get('reference_ips'))} | "
            f"{b} | {d} | {e} | {r.get('flex_attention') or 'n/a'} | {c} | "
            f"{_f(r.get('mfu') and 100 * r['mfu'])} / {_f(r.get('flex_mfu') and 100 * r['flex_mfu'])} % | "
            f"{_f(r.get('cosine_min'), '.5f')} / {_f(r.get('flex_cosine_min'), '.5f')} | "
            f"{_f(r.get('encoder_first_s'))} / {_f(r.get('flex_first_s'))} | "
            f"{_f(r.get('peak_memory_gib'), '.2f')} / {_f(r.get('flex_peak_memory_gib'), '.2f')} |")
    for name in ("extract", "extract-profile"):
        step = done.get(name, {})
        res = step.get("result")
        if not res:
            continue
        lines += ["", f"## `{name}`: {res['images']} generated EuroSAT tiles at {res['img_size']}, {res['model']}", ""]
        if name == "extract":
            lines.append(f"{res['images_per_second']:.1f} img/s over {res['seconds']:.1f} s (batch "
                         f"{res.get('batch_size')}, {res.get('workers')} workers, attention {res.get('attention')}).")
        else:
            lines += [f"Under the profiler: {res['images_per_second']:.1f} img/s. Share of the wall time "
                      f"({res['wall_seconds']:.1f} s; the parts overlap by design):", "",
                      "| part | seconds | share |", "|---|---|---|"]
            labels = {"decode_wait": "waiting for decoded images (main thread)", "copy": "host-device copies (device)",
                      "encode_kernels": "encoder kernels (device)", "encode_calls": "encoder calls (host)",
                      "write": "writing the cache (writer thread)"}
            lines += [f"| {labels[k]} | {v:.2f} | {100 * res['share'][k]:.1f} % |" for k, v in res["seconds"].items()]
    lines += ["", "## Steps", "", "| step | status | seconds | command |", "|---|---|---|---|"]
    lines += [f"| {name} | {s['status']} | {s['seconds']:.0f} | `{s['command']}` |" for name, s in done.items()]
    for name, step in done.items():
        if name.startswith("attention-paths") and step["status"] == "ok":
            shown = [line for line in step["output_tail"].splitlines() if not re.match(r"[WIE]\d{4} ", line)]  # torch's log
            lines += ["", f"## `{name}` (`benchmarks/attention_paths.py`)", "", "```", *shown, "```"]
    tests = done.get("pytest-gpu")
    if tests:
        lines += ["", f"`pytest -m gpu`: {tests['output_tail'].splitlines()[-1] if tests['output_tail'] else ''}"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
