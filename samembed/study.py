"""``run_study``: a study's protocol as one checked-in TOML file (encoders, input sizes, heads,
splits, seeds), run end to end: it extracts what is missing, sweeps every head over every split
and seed on every encoder's cache group (and the from-scratch baselines once), then reports.
Every stage resumes, so running a study again finishes what is missing and redoes nothing.

The file (``experiments/eurosat-study.toml`` is a full example)::

    dataset = "eurosat"            # required; data_dir = "...", download = true and the dataset's own
                                   #   options (scene: chip_size, chip_overlap) are optional
    [[encoders]]                   # one `samembed extract` each, with any of its options (encoder, model,
    encoder = "sam"                #   checkpoint, img_size, grid, bands, stretch, attention, min_data_share,
    model = "vit_b"                #   prompt_features, batch_size, workers, ...); heads = [...] overrides [sweep] heads
    [sweep]                        # heads, baselines (from scratch, run once), splits or shots, seeds,
    heads = ["linear", "knn"]      #   feature, epochs, lr, batch_size, min_steps; the heads' kinds give the
    splits = [0.2, 0.5]            #   rest of the defaults
    seeds = 3
    [report]                       # optional: out = "folder"

Relative paths are relative to the folder the study is run from."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UsageError, capped, shortened
from .paths import DEFAULT_CACHE_DIR, DEFAULT_RUNS_DIR, SAFE_NAME

from .checks import Check, is_number, is_whole, flag, text, whole


def safe_name(value) -> str | None:
    return None if isinstance(value, str) and SAFE_NAME.fullmatch(value) else \
        "a name of letters, digits, '.', '_' and '-' (it names a folder)"


def split(value) -> str | None:
    ok = value == "standard" or is_number(value) and 0 < value < 1
    return None if ok else "a validation fraction strictly between 0 and 1, or \"standard\""


def seeds(value) -> str | None:
    if is_whole(value) and value >= 1 or isinstance(value, list) and value and all(is_whole(v) and v >= 0 for v in value):
        return None
    return "a number of seeds (a whole number >= 1) or a non-empty list of seeds (whole numbers >= 0)"


def known(kind: str, names: Callable[[], list[str]]) -> Check:
    """A name the registry ``names()`` knows (listed, capped, when it does not)."""
    def check(value) -> str | None:
        return None if isinstance(value, str) and value in names() else f"a known {kind} ({capped(names(), 20)})"

    return check


def list_of(check: Check) -> Check:
    """A non-empty list whose every item passes ``check``; the first wrong item is named."""
    def check_list(value) -> str | None:
        if not isinstance(value, list) or not value:
            return "a non-empty list"
        for item in value:
            if (expected := check(item)) is not None:
                return f"a list of which each is {expected}; {_shown(item)} is not"
        return None

    return check_list


def _datasets() -> list[str]:
    from .datasets.registry import available_datasets

    return available_datasets()


def _heads() -> list[str]:
    """Every head of every task (which task a study's dataset is is known once it is indexed)."""
    from .experiments.base import TASKS
    from .heads import available_heads

    return sorted({head for task in TASKS.names() for head in available_heads(task)})


HEADS = list_of(known("head", _heads))
# The study file's schema: table -> key -> check. Keys not listed are refused.
TOP: dict[str, Check] = {"name": safe_name, "dataset": known("dataset", _datasets), "data_dir": text,
                         "download": flag, "encoders": lambda v: None, "sweep": lambda v: None,
                         "report": lambda v: None}


def encoder_checks() -> dict[str, Check]:
    """The keys of an ``[[encoders]]`` table: every extraction option a study may set per encoder
    (:class:`~samembed.extraction.request.ExtractionRequest`), and the heads trained on it."""
    from .extraction.request import study_checks

    return {**study_checks(), "heads": HEADS}


def sweep_checks() -> dict[str, Check]:
    """The keys of the ``[sweep]`` table: what it sweeps, and every training option
    (:class:`~samembed.experiments.request.TrainingRequest`)."""
    from .experiments.request import study_checks

    return {**SWEEP, **study_checks()}


def dataset_checks(study: dict) -> dict[str, Check]:
    """Top-level keys the study's dataset declares (the ``scene`` dataset's ``chip_size``, ...):
    checked by the dataset's loader when the study indexes it, before anything is extracted."""
    from .datasets.registry import available_datasets, get_dataset

    dataset = study.get("dataset")
    if not isinstance(dataset, str) or dataset not in available_datasets():
        return {}
    return {name: lambda v: None for name in get_dataset(dataset).options}
SWEEP: dict[str, Check] = {"heads": HEADS, "baselines": HEADS, "splits": list_of(split), "shots": list_of(whole(1)),
                           "seeds": seeds}  # and every training option: sweep_checks()
REPORT: dict[str, Check] = {"out": text}
REQUIRED = ("dataset", "encoders", "sweep")


@dataclass
class StudyResult:
    groups: list[str]  # the cache groups of the study's encoders
    runs: int  # run records written by this call
    report: object  # the samembed.report.Report
    extracted: dict[str, int] = field(default_factory=dict)  # group -> images encoded by this call


def load_study(path: str | Path) -> dict:
    """The study file, checked whole against its schema (:data:`TOP`, :func:`encoder_checks`,
    :data:`SWEEP`, :data:`REPORT`: types, ranges, names the registries know) before anything runs.
    Every problem found is counted in one line that names the first few."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"no study file {path}; see experiments/eurosat-study.toml for one") from None
    except IsADirectoryError:
        raise UsageError(f"{path} is a folder; pass a study file (TOML), e.g. experiments/eurosat-study.toml") from None
    try:
        study = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise UsageError(f"{path} is not UTF-8 text (byte {data[err.start]:#04x} at offset {err.start}); save it as "
                         "UTF-8 TOML") from None
    except tomllib.TOMLDecodeError as err:
        raise UsageError(f"{path} is not valid TOML ({shortened(err, 120)})") from None
    problems = study_problems(study)
    if problems:
        count = f"{len(problems)} problems: " if len(problems) > 1 else ""
        raise UsageError(f"{path.name}: {count}{capped(problems, 3, width=400, sep='; ')}; see "
                         "experiments/eurosat-study.toml for a complete study")
    return study


def study_problems(study: dict) -> list[str]:
    """What is wrong with a parsed study file, one short sentence each (empty: nothing)."""
    problems = _table(study, {**TOP, **dataset_checks(study)}, "")
    problems += [f"lacks '{key}'" for key in REQUIRED if key not in study]
    encoders = study.get("encoders")
    if "encoders" in study and (not isinstance(encoders, list) or not encoders):
        problems.append("'encoders' must be a list of [[encoders]] tables, at least one")
    for k, entry in enumerate(encoders if isinstance(encoders, list) else [], start=1):
        problems += _table(entry, encoder_checks(), f"[[encoders]] #{k} ")
    if "sweep" in study:
        problems += _table(study["sweep"], sweep_checks(), "[sweep] ")
        if isinstance(study["sweep"], dict) and {"splits", "shots"} <= set(study["sweep"]):
            problems.append("[sweep] gives both splits and shots; keep one")
    if "report" in study:
        problems += _table(study["report"], REPORT, "[report] ")
    sweep_heads = isinstance(study.get("sweep"), dict) and "heads" in study["sweep"]
    for k, entry in enumerate(encoders if isinstance(encoders, list) else [], start=1):
        if isinstance(entry, dict) and "heads" not in entry and not sweep_heads:
            problems.append(f"[[encoders]] #{k} has no heads: give heads there or in [sweep]")
        if isinstance(entry, dict) and isinstance(entry.get("model"), str) and (wrong := _model_problem(entry)):
            problems.append(f"[[encoders]] #{k} {wrong}")
    return problems


def _model_problem(entry: dict) -> str | None:
    """Why ``entry``'s model is not one its (built-in) encoder declares, or ``None``."""
    from .plugins import DEFAULT_ENCODER, ENCODER_MODELS

    declared = ENCODER_MODELS.get(entry.get("encoder", DEFAULT_ENCODER))
    if declared is None:  # an encoder from a plugin: its factory checks its own models
        return None
    model = entry["model"]
    if model in declared.models or declared.random_suffix and model.removesuffix("-random") in declared.models:
        return None
    random = " (-random after one: random weights)" if declared.random_suffix else ""
    encoder = entry.get("encoder", DEFAULT_ENCODER)
    return (f"model must be one of {encoder}'s models ({', '.join(declared.models)}){random}, "
            f"not {_shown(model)}")


def study_heads(study: dict) -> list[str]:
    """Every head the study trains (on its encoders' groups, and the baselines)."""
    plan = study["sweep"]
    return sorted({h for e in study["encoders"] for h in e.get("heads", plan.get("heads", []))}
                  | set(plan.get("baselines", [])))


def _table(table, schema: dict[str, Check], where: str) -> list[str]:
    if not isinstance(table, dict):
        return [f"{where.strip() or 'the file'} must be a table, not {_shown(table)}"]
    unknown = sorted(set(table) - set(schema))
    problems = [f"{where}has unknown key(s) {capped(unknown, 3, 40)}; known: {', '.join(sorted(schema))}"] if unknown else []
    for key, check in schema.items():
        if key in table and (expected := check(table[key])) is not None:
            wrong = "" if isinstance(table[key], list) and "; " in expected else f", not {_shown(table[key])}"
            problems.append(f"{where}{key} must be {expected}{wrong}")
    return problems


def _shown(value) -> str:
    """A value of the file as a message quotes it, with its TOML type where that is the mistake."""
    if isinstance(value, str):
        return f'"{shortened(value, 40)}" (a string)'
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return shortened(value, 40) if len(str(value)) <= 40 else f"a list of {len(value)}"
    return shortened(value, 40)


def run_study(
    path: str | Path, *, data_dir: str | Path | None = None, cache_dir: str | Path = DEFAULT_CACHE_DIR,
    runs_dir: str | Path = DEFAULT_RUNS_DIR, out: str | Path | None = None, device: str = "auto",
    progress: bool = True, say=lambda message: None,
) -> StudyResult:
    """Run the study in ``path``: extract, sweep, report. ``data_dir`` overrides the file's;
    ``out`` is the report folder (default: the file's ``[report] out``, else
    ``<runs_dir>/report-<study name>``)."""
    from .datasets import load_dataset
    from .experiments.sweep import sweep
    from .extraction import ExtractionRequest, extract
    from .heads import available_heads
    from .report import write_report

    study = load_study(path)
    name = study.get("name", Path(path).stem)
    dataset = study["dataset"]
    data_dir = data_dir if data_dir is not None else study.get("data_dir")
    # Indexed once, before any extraction: its task says which heads apply (a head of another task
    # is refused now, not after hours of encoding), and every extraction reads this index.
    options = {key: study[key] for key in dataset_checks(study)}
    index = load_dataset(dataset, data_dir, study.get("download", False), **options)
    wrong = [h for h in study_heads(study) if h not in available_heads(index.task)]
    if wrong:
        raise UsageError(f"{Path(path).name}: {capped(wrong)} {'is not a' if len(wrong) == 1 else 'are not'} "
                         f"{index.task} head{'s' if len(wrong) > 1 else ''} ({dataset} is a {index.task} dataset); "
                         f"its heads: {', '.join(available_heads(index.task))}")
    plan = study["sweep"]
    splits = {"shots": plan["shots"]} if "shots" in plan else {"splits": plan.get("splits", [0.2])}
    training = {k: v for k, v in plan.items() if k not in SWEEP}  # TrainingRequest fields (the schema says so)
    common = dict(seeds=plan.get("seeds", 1), device=device, cache_dir=cache_dir, runs_dir=runs_dir,
                  data_dir=data_dir, download=study.get("download", False), progress=progress, **training, **splits)
    result = StudyResult([], 0, None)
    for k, entry in enumerate(study["encoders"], start=1):
        request = ExtractionRequest.of(index, **{k: v for k, v in entry.items() if k != "heads"}, data_dir=data_dir,
                                       download=study.get("download", False), device=device, cache_dir=cache_dir,
                                       progress=progress)
        say(f"{name}: extract {k}/{len(study['encoders'])} ({request.encoder} "
            f"{request.model or request.checkpoint or ''})")
        extracted = extract(request)
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
    result.report = write_report(runs_dir, out, dataset=dataset, encoder=result.groups, head=study_heads(study))
    return result
