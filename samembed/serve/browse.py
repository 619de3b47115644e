"""Browse routes: the cache's groups (what ``samembed info`` says), a group's images as pages
filtered by class, split and state, each image, its thumbnail and ground truth, and a scene whole
at screen resolution with its chips."""

from __future__ import annotations

import time

import numpy as np
from starlette.requests import Request
from starlette.responses import JSONResponse

from .common import BadRequest, off_loop, png_response, query_int, route, state_of, view_of
from .images import image_rgb, overview_side, png, scene_overview, thumbnail, truth_mask
from .state import GroupView, NotFound

PAGE = 60  # images per page by default
MAX_PAGE = 500
STATES = ("all", "usable", "blank", "skipped")


def describe(view: GroupView) -> dict:
    """A group's summary, from its attributes only (no array read: listing is instant)."""
    g = view.group
    if g.problem:
        return {"key": view.key, "damaged": g.problem}
    sig, attrs = g.signature, g.attrs
    encoder = sig.get("encoder", {})
    return {
        "key": view.key, "dataset": g.dataset, "group": g.name, "images": g.num_images,
        "classes": g.class_names, "task": g.task, "encoder": encoder.get("encoder"),
        "variant": encoder.get("variant"), "img_size": encoder.get("img_size"), "grid": sig.get("grid"),
        "promptable": encoder.get("encoder") in ("sam", "sam2") and int(sig.get("grid", 0)) * 16 == int(
            encoder.get("img_size") or 0) or bool(sig.get("prompt_maps")),
        "scenes": sorted(attrs.get("georef") or {}), "composite": sig.get("composite"),
    }


@route
async def groups(request: Request):
    """GET /api/groups: every group of the cache."""
    views = await off_loop(lambda: list(state_of(request).groups().values()))
    return JSONResponse({"groups": [describe(v) for v in views]})


def _page(view: GroupView, params, offset: int, limit: int) -> dict:
    index = view.index()
    n = len(index["ids"])
    keep = np.ones(n, bool)
    classes = view.group.class_names
    wanted_class = params.get("class")
    if wanted_class:
        if wanted_class not in classes:
            raise BadRequest(f"no class {wanted_class[:60]!r}; classes: {', '.join(classes[:20])}")
        keep &= index["labels"] == classes.index(wanted_class)
    split = params.get("split")
    if split:
        if index["subset"] is None:
            raise BadRequest(f"{view.key} has no fixed split")
        keep &= np.asarray(index["subset"]) == split
    state = params.get("state", "all")
    if state not in STATES:
        raise BadRequest(f"state is one of {', '.join(STATES)}")
    if state != "all":
        keep &= index[state]
    text = params.get("q")
    if text:
        keep &= np.fromiter((text in i for i in index["ids"]), bool, n)
    rows = np.flatnonzero(keep)
    page = rows[offset:offset + limit]
    items = [{"row": int(r), "id": index["ids"][r], "class": classes[index["labels"][r]],
              "state": "usable" if index["usable"][r] else "blank" if index["blank"][r] else "skipped",
              **({"split": index["subset"][r]} if index["subset"] else {})} for r in page]
    return {"total": int(len(rows)), "offset": offset, "items": items,
            "splits": sorted(set(index["subset"])) if index["subset"] else []}


@route
async def images(request: Request):
    """GET /api/groups/{dataset}/{group}/images?offset&limit&class&split&state&q: a page of images."""
    view = view_of(request)
    offset = query_int(request, "offset", 0)
    limit = query_int(request, "limit", PAGE, 1, MAX_PAGE)
    t0 = time.perf_counter()
    page = await off_loop(_page, view, dict(request.query_params), offset, limit)
    return JSONResponse(page, headers={"Server-Timing": f"page;dur={1000 * (time.perf_counter() - t0):.2f}"})


@route
async def image(request: Request):
    """GET .../images/{row}.png?side=N: the image as its encoder saw it (at most N a side)."""
    view = view_of(request)
    row = view.row(request.path_params["row"])
    side = query_int(request, "side", None, 16, 8192)

    def draw():
        rgb = image_rgb(view, row)
        return png(thumbnail(rgb, side) if side else rgb)

    return png_response(await off_loop(draw))


@route
async def image_info(request: Request):
    """GET .../images/{row} (or .../lookup?id=ID): one image's id, class, state, size and (chips)
    scene window."""
    view = view_of(request)
    given = request.path_params.get("row")
    row = view.row(given if given is not None else request.query_params.get("id", ""))

    def info():
        index = view.index()
        hw = view.group.group["orig_hw"][row]
        out = {"row": row, "id": index["ids"][row], "class": view.group.class_names[index["labels"][row]],
               "usable": bool(index["usable"][row]), "width": int(hw[1]), "height": int(hw[0]),
               "rows": len(index["ids"])}
        if index["scene"] is not None:
            out.update(scene=index["scene"][row], window=[int(v) for v in index["window"][row]])
        return out

    return JSONResponse(await off_loop(info))


@route
async def truth(request: Request):
    """GET .../images/{row}/truth.png: a segmentation image's ground truth as a see-through mask."""
    from .images import mask_png

    view = view_of(request)
    row = view.row(request.path_params["row"])
    if view.group.task != "segmentation":
        raise NotFound("truth")
    return png_response(await off_loop(lambda: mask_png(truth_mask(view, row), (255, 200, 0))))


@route
async def scenes(request: Request):
    """GET .../scenes: each scene's size, CRS, transform and chips (row, window, usable)."""
    view = view_of(request)

    def listing():
        georef = view.group.attrs.get("georef") or {}
        index = view.index()
        out = []
        for number, name in enumerate(sorted(georef)):
            chips = [{"row": i, "window": [int(v) for v in index["window"][i]], "usable": bool(index["usable"][i])}
                     for i, s in enumerate(index["scene"]) if s == name]
            out.append({"number": number, "name": name, "width": georef[name]["width"],
                        "height": georef[name]["height"], "crs": georef[name]["crs"],
                        "transform": georef[name]["transform"], "chips": chips})
        return out

    return JSONResponse({"scenes": await off_loop(listing)})


@route
async def scene_image(request: Request):
    """GET .../scenes/{scene}.png?side=N: the scene whole, at most N pixels a side."""
    view = view_of(request)
    names = sorted(view.group.attrs.get("georef") or {})
    number = request.path_params["scene"]
    if not number.isdigit() or int(number) >= len(names):
        raise NotFound(number)
    side = overview_side(query_int(request, "side", None, 64, 4096))
    rgb, _ = await off_loop(scene_overview, view, names[int(number)], side)
    return png_response(await off_loop(png, rgb))
