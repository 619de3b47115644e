"""``run_study``: a study's protocol as one checked-in TOML file (encoders, input sizes, heads,
splits, seeds), run end to end: it extracts what is missing, sweeps every head over every split
and seed on every encoder's cache group (and the from-scratch baselines once), then reports.
Every stage resumes, so running a study again finishes what is missing and redoes nothing.

The file (``experiments/eurosat-study.toml`` is a full example)::

    dataset = "eurosat"            # required; data_dir = "...", download = true are optional
    [[encoders]]                   # one `samembed extract` each: encoder, model, checkpoint, img_size,
    encoder = "sam"                #   grid, batch_size, workers; heads = [...] overrides [sweep] heads
    model = "vit_b"
    [sweep]                        # heads, baselines (from scratch, run once), splits or shots, seeds,
    heads = ["linear", "knn"]      #   feature, epochs, lr, batch_size, min_steps; the heads' kinds give the
    splits = [0.2, 0.5]            #   rest of the defaults
    seeds = 3
    [report]                       # optional: out = "folder"

Relative paths are relative to the folder the study is run from."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UsageError
from .paths import DEFAULT_CACHE_DIR, DEFAULT_RUNS_DIR

TOP = {"name", "dataset", "data_dir", "download", "encoders", "sweep", "report"}
ENCODER = {"encoder", "model", "checkpoint", "img_size", "grid", "batch_size", "workers", "heads", "prompt_features"}
SWEEP = {"heads", "baselines", "splits", "shots", "seeds", "feature", "epochs", "lr", "batch_size", "min_steps"}
REPORT = {"out"}


@dataclass
class StudyResult:
    groups: list[str]  # the cache groups of the study's encoders
    runs: int  # run records written by this call
    report: object  # the samembed.report.Report
    extracted: dict[str, int] = field(default_factory=dict)  # group -> images encoded by this call


def load_study(path: str | Path) -> dict:
    """The study file, checked: unknown keys and missing required ones are one line each."""
    path = Path(path)
    try:
        study = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"no study file {path}; see experiments/eurosat-study.toml for one") from None
    except tomllib.TOMLDecodeError as err:
        raise UsageError(f"{path} is not valid TOML ({err})") from None
    _check(study, TOP, path.name)
    for key in ("dataset", "encoders", "sweep"):
        if key not in study:
            raise UsageError(f"{path.name} lacks '{key}'; see experiments/eurosat-study.toml for a complete study")
    if not isinstance(study["encoders"], list) or not study["encoders"]:
        raise UsageError(f"{path.name}: 'encoders' must be a list of [[encoders]] tables, at least one")
    for entry in study["encoders"]:
        _check(entry, ENCODER, f"{path.name} [[encoders]]")
    _check(study["sweep"], SWEEP, f"{path.name} [sweep]")
    _check(study.get("report", {}), REPORT, f"{path.name} [report]")
    return study


def _check(table, allowed: set[str], where: str) -> None:
    if not isinstance(table, dict):
        raise UsageError(f"{where} must be a table")
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise UsageError(f"{where} has unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(allowed))}")


def run_study(
    path: str | Path, *, data_dir: str | Path | None = None, cache_dir: str | Path = DEFAULT_CACHE_DIR,
    runs_dir: str | Path = DEFAULT_RUNS_DIR, out: str | Path | None = None, device: str = "auto",
    progress: bool = True, say=lambda message: None,
) -> StudyResult:
    """Run the study in ``path``: extract, sweep, report. ``data_dir`` overrides the file's;
    ``out`` is the report folder (default: the file's ``[report] out``, else
    ``<runs_dir>/report-<study name>``)."""
    from .experiments.sweep import sweep
    from .extraction import extract
    from .report import write_report

    study = load_study(path)
    name = study.get("name", Path(path).stem)
    dataset = study["dataset"]
    data_dir = data_dir if data_dir is not None else study.get("data_dir")
    plan = study["sweep"]
    splits = {"shots": plan["shots"]} if "shots" in plan else {"splits": plan.get("splits", [0.2])}
    common = dict(seeds=plan.get("seeds", 1), feature=plan.get("feature"), epochs=plan.get("epochs"),
                  lr=plan.get("lr"), batch_size=plan.get("batch_size"), min_steps=plan.get("min_steps"),
                  device=device, cache_dir=cache_dir,
                  runs_dir=runs_dir, data_dir=data_dir, download=study.get("download", False), progress=progress,
                  **splits)
    result = StudyResult([], 0, None)
    for k, entry in enumerate(study["encoders"], start=1):
        say(f"{name}: extract {k}/{len(study['encoders'])} ({entry.get('encoder', 'sam')} "
            f"{entry.get('model') or entry.get('checkpoint') or ''})")
        extracted = extract(dataset, data_dir=data_dir, download=study.get("download", False),
                            encoder=entry.get("encoder", "sam"), model=entry.get("model"),
                            checkpoint=entry.get("checkpoint"), img_size=entry.get("img_size"), grid=entry.get("grid"),
                            batch_size=entry.get("batch_size"), workers=entry.get("workers"), device=device,
                            cache_dir=cache_dir, progress=progress, prompt_features=entry.get("prompt_features", False))
        result.groups.append(extracted.group)
        result.extracted[extracted.group] = extracted.encoded
    for group, entry in zip(result.groups, study["encoders"]):
        heads = entry.get("heads", plan.get("heads", []))
        say(f"{name}: sweep {', '.join(heads)} on {group}")
        result.runs += len(sweep(dataset, encoder=group, heads=heads, **common))
    if plan.get("baselines"):  # a baseline's run does not depend on the cache group: run it once
        say(f"{name}: sweep the baselines {', '.join(plan['baselines'])}")
        result.runs += len(sweep(dataset, encoder=result.groups[0], heads=plan["baselines"], **common))
    out = out if out is not None else study.get("report", {}).get("out", Path(runs_dir) / f"report-{name}")
    say(f"{name}: report in {out}")
    heads = sorted({h for e in study["encoders"] for h in e.get("heads", plan.get("heads", []))} |
                   set(plan.get("baselines", [])))
    result.report = write_report(runs_dir, out, dataset=dataset, encoder=result.groups, head=heads)
    return result
