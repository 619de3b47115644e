"""Results routes: the report's tables for the runs store (its own table functions), the report
itself written into the output folder (``write_report``) with its figures served by name, a
classification run's confusion matrix whose cells open the evaluated images of that cell (from
the images' recorded predictions), and segmentation runs side by side (each model's predicted
masks, by position in the run's evaluated images)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse

from ..errors import UsageError
from .common import off_loop, png_response, query_int, route, state_of
from .state import NotFound, ServerState


def _records(state: ServerState) -> list[dict]:
    from ..experiments.records import RunsStore, first_of_each_run, readable_runs

    store = RunsStore(state.runs_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        records, _ = first_of_each_run(readable_runs(store.records(), store.path))
    return records


def _frame(frame) -> list[dict]:
    return json.loads(frame.to_json(orient="records", default_handler=str)) if len(frame) else []


def _tables(state: ServerState) -> dict:
    from ..report.segmentation import seg_runs_table, seg_summary_table
    from ..report.tables import runs_table, summary_table

    records = _records(state)
    by_id = {r["run_id"]: r for r in records}
    classification = [r for r in records if r.get("task", "classification") == "classification"]
    segmentation = [r for r in records if r.get("task") == "segmentation"]
    out: dict = {"runs_store": str(state.runs_dir / "runs.jsonl"), "runs": len(records)}
    if classification:
        runs = runs_table(classification)
        summary = summary_table(runs, by_id).drop(columns=["run_ids"], errors="ignore")
        out["classification"] = {"runs": _frame(runs.drop(columns=["curves"], errors="ignore")),
                                 "summary": _frame(summary)}
        out["confusion"] = [{"run_id": r["run_id"], "dataset": r["cache"]["dataset"], "group": r["cache"]["group"],
                             "head": r["config"]["head"], "split": r["split"]["name"], "seed": r["split"]["seed"],
                             "classes": list(r["metrics"]["per_class"]), "matrix": r["metrics"]["confusion_matrix"],
                             "paired": bool(r["metrics"].get("predictions"))} for r in classification]
    if segmentation:
        runs = seg_runs_table(segmentation)
        out["segmentation"] = {"runs": _frame(runs.drop(columns=["predictions_dir"])),
                               "summary": _frame(seg_summary_table(runs, by_id))}
    return out


@route
async def tables(request: Request):
    """GET /api/results: the runs and summary tables of each task, and every classification run's
    confusion matrix."""
    return JSONResponse(await off_loop(_tables, state_of(request)))


def _record(state: ServerState, run_id: str) -> dict:
    for record in _records(state):
        if record["run_id"] == run_id:
            return record
    raise NotFound(run_id)


def cell_images(state: ServerState, run_id: str, true: int, predicted: int) -> dict:
    """The evaluated images of one cell of a classification run's confusion matrix: rows of the
    served cache group whose true class is ``true`` and that the run predicted as ``predicted``.
    The split is made again from the cache (the same labels, usable images, split and seed give
    the same indices) and checked against the record's ``indices_hash``."""
    from ..classification.metrics import recorded_predictions
    from ..experiments.base import TASKS, ExperimentOptions
    from ..splits import SplitSpec

    record = _record(state, run_id)
    if record.get("task", "classification") != "classification":
        raise NotFound(run_id)
    classes = list(record["metrics"]["per_class"])
    if not (0 <= true < len(classes) and 0 <= predicted < len(classes)):
        raise NotFound(f"{true},{predicted}")
    recorded = recorded_predictions(record["metrics"])
    if recorded is None:
        raise UsageError(f"run {run_id} was recorded before samembed kept each image's prediction; run it again "
                         "to open the images of a cell")
    view = state.find_group(record["cache"]["dataset"], record["cache"]["group"])
    if view is None:
        raise UsageError(f"run {run_id} was made on {record['cache']['dataset']}/{record['cache']['group']}, which "
                         f"is not in the cache served ({state.cache_dir}); serve that cache with --cache-dir")
    experiment = TASKS.get("classification")(view.group, ExperimentOptions(runs_dir=state.runs_dir, device="cpu"))
    split = experiment.split(SplitSpec.from_name(record["split"]["name"]), int(record["split"]["seed"]))
    if split.indices_hash != record["split"]["indices_hash"]:
        raise UsageError(f"the cache's images are not the ones run {run_id} evaluated (its split differs); the "
                         "cache was extracted again since")
    evaluated = split.test if len(split.test) else split.val
    truth, guess = recorded
    rows = evaluated[(truth == true) & (guess == predicted)]
    ids = view.index()["ids"]
    return {"run_id": run_id, "group": view.key, "true": classes[true], "predicted": classes[predicted],
            "images": [{"row": int(r), "id": ids[r]} for r in rows]}


@route
async def confusion_cell(request: Request):
    """GET /api/results/runs/{run}/confusion?true=I&predicted=J: the images of that cell."""
    true = query_int(request, "true", 0)
    predicted = query_int(request, "predicted", 0)
    return JSONResponse(await off_loop(cell_images, state_of(request), request.path_params["run"], true, predicted))


def _report(state: ServerState) -> dict:
    from ..report import write_report

    out = state.out_dir / "report"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = write_report(state.runs_dir, out)
    state.reports = {p.name: p for p in report.files if p.suffix == ".png"}
    markdown = (out / "report.md").read_text()
    return {"folder": str(out), "figures": sorted(state.reports), "markdown": markdown}


@route
async def report(request: Request):
    """POST /api/results/report: write the report of the runs store into OUT/report (as
    ``samembed report --out OUT/report``); its figures are then served by name."""
    return JSONResponse(await off_loop(_report, state_of(request)))


@route
async def figure(request: Request):
    """GET /api/results/figures/{name}: a figure of the last report written (looked up by name)."""
    path = state_of(request).reports.get(request.path_params["name"])
    if path is None or not path.is_file():
        raise NotFound(request.path_params["name"])
    return FileResponse(path, media_type="image/png")


def _segmentation(state: ServerState) -> dict:
    from ..report.segmentation import model_label

    records = [r for r in _records(state) if r.get("task") == "segmentation"]
    by_model: dict[str, dict] = {}
    for r in sorted(records, key=lambda r: (model_label(r), r["config"]["seed"])):
        by_model.setdefault(model_label(r), r)
    models = []
    for label, r in sorted(by_model.items()):
        view = state.find_group(r["cache"]["dataset"], r["cache"]["group"])
        models.append({"model": label, "run_id": r["run_id"], "dataset": r["cache"]["dataset"],
                       "group": view.key if view else None,
                       "images": [p["image_id"] for p in r["metrics"].get("per_image", [])]})
    return {"models": models}


@route
async def segmentation(request: Request):
    """GET /api/results/segmentation: the first run of each segmentation model and its evaluated images."""
    return JSONResponse(await off_loop(_segmentation, state_of(request)))


def _prediction_file(state: ServerState, run_id: str, k: int) -> Path:
    record = _record(state, run_id)
    per_image = record["metrics"].get("per_image") or []
    if record.get("task") != "segmentation" or not 0 <= k < len(per_image):
        raise NotFound(run_id)
    folder = Path(record.get("predictions_dir", ""))
    path = (folder / per_image[k]["prediction"]).resolve()
    if not path.is_relative_to(state.runs_dir.resolve()) or not path.is_file():
        raise NotFound(run_id)  # a record naming a file outside the runs folder is not followed
    return path


@route
async def prediction(request: Request):
    """GET /api/results/runs/{run}/predictions/{k}.png: a segmentation run's mask of its k-th
    evaluated image, as a see-through mask."""
    from PIL import Image

    from .images import mask_png

    k = request.path_params["k"]
    if not k.isdigit():
        raise NotFound(k)
    path = await off_loop(_prediction_file, state_of(request), request.path_params["run"], int(k))
    data = await off_loop(lambda: mask_png(np.asarray(Image.open(path).convert("L")) > 127, (255, 60, 160)))
    return png_response(data)
