"""Prompt routes: a point, points or a box on an image or chip, or on a whole scene (answered on
every chip the object runs into and merged: :mod:`samembed.serve.scenes`), answered from the
cached embedding by the library's :class:`~samembed.prompting.predictor.CachePredictor` (one per
group, kept by the server), and saved through ``samembed prompt``'s own writer.

An answer holds the chosen mask and the decoder's three candidates as PNG data URLs, their
predicted IoUs, and a ``Server-Timing`` header (``decode``: the predictor; ``encode``: the PNGs)."""

from __future__ import annotations

import base64
import itertools
import time
from datetime import datetime, timezone

import numpy as np
import torch
from starlette.requests import Request
from starlette.responses import JSONResponse

from ..errors import UsageError
from ..prompting.predictor import PromptMask
from ..prompting.prompts import MAX_POINTS, Prompt
from .common import BadRequest, json_body, off_loop, route, state_of, view_of
from .images import mask_png
from .scenes import answer_on_scene, chips_of
from .state import GroupView, NotFound

_saves = itertools.count(1)


def data_url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def prompt_of(body: dict, image_id: str | None) -> Prompt:
    """The :class:`Prompt` of a request body: ``points`` [[x, y], ...], ``labels`` [1 or 0, ...]
    (default all 1), ``box`` [x0, y0, x1, y1] or null, in the image's (or scene's) pixels."""
    try:
        points = tuple((float(x), float(y)) for x, y in body.get("points") or [])
        labels = tuple(body.get("labels") if body.get("labels") is not None else [1] * len(points))
        box = tuple(float(v) for v in body["box"]) if body.get("box") is not None else None
    except (TypeError, ValueError):
        raise BadRequest("points are [[x, y], ...], labels [1 or 0, ...] and box [x0, y0, x1, y1]") from None
    if len(points) > MAX_POINTS:
        raise BadRequest(f"a prompt takes at most {MAX_POINTS} points")
    if box is not None and len(box) != 4:
        raise BadRequest("box is [x0, y0, x1, y1]")
    return Prompt(points, labels, box, image_id)


def candidates(predictor, row: int, answer: PromptMask) -> list[np.ndarray]:
    """The decoder's masks of ``answer`` at the original resolution, each as the predictor makes
    its chosen one (the geometry's ``input_to_original``, threshold at logit 0)."""
    hw = predictor.orig_hw[row]
    return [(predictor.geometry.input_to_original(torch.as_tensor(logits), hw) > 0).numpy()
            for logits in answer.low_res_logits]


def _answer_image(view: GroupView, checkpoint, row: int, body: dict) -> tuple[dict, float, float]:
    predictor = view.predictor(checkpoint)
    predictor.check_usable(row)
    prompt = prompt_of(body, predictor.image_ids[row])
    prompt.check_inside(predictor.orig_hw[row])
    with view.prompt_lock:
        t0 = time.perf_counter()
        (answer,) = predictor.answers(row, [prompt])
        masks = candidates(predictor, row, answer)
        decode = time.perf_counter() - t0
    t1 = time.perf_counter()
    urls = [data_url(mask_png(m)) for m in masks]
    encode = time.perf_counter() - t1
    return {"row": row, "id": predictor.image_ids[row], "choice": answer.choice, "score": answer.score,
            "scores": answer.scores, "masks": urls, "pixels": [int(m.sum()) for m in masks],
            "size": [int(v) for v in predictor.orig_hw[row][::-1]], "prompt": prompt.to_dict()}, decode, encode


def _answer_scene(view: GroupView, checkpoint, scene_number: int, body: dict) -> tuple[dict, float, float]:
    predictor = view.predictor(checkpoint)
    index = view.index()
    scenes = sorted(view.group.attrs.get("georef") or {})
    if scene_number >= len(scenes):
        raise NotFound(scene_number)
    scene = scenes[scene_number]
    georef = view.group.attrs["georef"][scene]
    prompt = prompt_of(body, None)
    prompt.check_inside((georef["height"], georef["width"]))
    rows = chips_of(index["scene"], index["window"], index["usable"], scene)
    with view.prompt_lock:
        t0 = time.perf_counter()
        merged = answer_on_scene(predictor, scene, prompt, rows, index["window"],
                                 (int(georef["height"]), int(georef["width"])))
        decode = time.perf_counter() - t0
    t1 = time.perf_counter()
    url = data_url(mask_png(merged.mask))
    encode = time.perf_counter() - t1
    chips = [{"row": c.row, "id": predictor.image_ids[c.row], "window": list(c.window), "score": c.answer.score,
              "seeded": c.seeded} for c in merged.chips]
    return {"scene": scene, "window": list(merged.window), "mask": url, "pixels": int(merged.mask.sum()),
            "chips": chips, "score": merged.chips[0].answer.score, "prompt": prompt.to_dict()}, decode, encode


def _timing(decode: float, encode: float) -> dict:
    return {"Server-Timing": f"decode;dur={1000 * decode:.2f}, encode;dur={1000 * encode:.2f}"}


@route
async def prompt_image(request: Request):
    """POST /api/groups/{dataset}/{group}/images/{row}/prompt: the masks of a prompt on one image."""
    view, body = view_of(request), await json_body(request)
    row = view.row(request.path_params["row"])
    answer, decode, encode = await off_loop(_answer_image, view, state_of(request).checkpoint, row, body)
    return JSONResponse(answer, headers=_timing(decode, encode))


@route
async def prompt_scene(request: Request):
    """POST /api/groups/{dataset}/{group}/scenes/{scene}/prompt: a prompt in scene pixels, merged
    over the chips it runs into."""
    view, body = view_of(request), await json_body(request)
    if not view.group.attrs.get("georef"):
        raise NotFound("scene")
    number = _number(request.path_params["scene"])
    answer, decode, encode = await off_loop(_answer_scene, view, state_of(request).checkpoint, number, body)
    return JSONResponse(answer, headers=_timing(decode, encode))


def _number(text: str) -> int:
    if not text.isdigit():
        raise NotFound(text)
    return int(text)


def _save(view: GroupView, state, row: int, body: dict) -> list[str]:
    from ..prompting.outputs import MaskWriter
    from ..prompting.run import PromptResult

    predictor = view.predictor(state.checkpoint)
    predictor.check_usable(row)
    prompt = prompt_of(body, predictor.image_ids[row])
    prompt.check_inside(predictor.orig_hw[row])
    with view.prompt_lock:
        (answer,) = predictor.answers(row, [prompt])
        masks = candidates(predictor, row, answer)
    choice = body.get("choice", answer.choice)
    if not isinstance(choice, int) or not 0 <= choice < len(masks):
        raise UsageError(f"choice is one of the decoder's masks, 0 to {len(masks) - 1}")
    chosen = PromptMask(prompt, masks[choice], answer.scores[choice], choice, answer.scores, answer.low_res_logits)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    folder = state.out_dir / f"mask-{stamp}-{next(_saves)}"
    with MaskWriter(folder, predictor) as writer:
        result = PromptResult(predictor.image_ids[row], row, chosen, number=0)
        writer.write(result)
    return [str(p.relative_to(state.out_dir)) for p in [*result.files, folder / "masks.csv"]]


@route
async def save_mask(request: Request):
    """POST /api/groups/{dataset}/{group}/images/{row}/save: the mask (``choice``: which of the
    three, default the best) written by ``samembed prompt``'s writer into the output folder: PNG,
    and GeoTIFF and GeoJSON for chips of georeferenced scenes, with masks.csv."""
    view, body = view_of(request), await json_body(request)
    row = view.row(request.path_params["row"])
    files = await off_loop(_save, view, state_of(request), row, body)
    return JSONResponse({"files": files})
