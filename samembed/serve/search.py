"""The search route: the most similar images, chips or map cells to the ones selected, or the
similarity heat map over a scene, through the library's :func:`samembed.search.search` (imported
when first asked for; where the library is not installed the route answers 501 in one line)."""

from __future__ import annotations

import json

import numpy as np
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse

from .common import BadRequest, off_loop, query_int, route, view_of
from .prompt import data_url

MODES = ("neighbours", "fewshot")
GRANULARITIES = ("image", "cell")
INDEXES = ("exact", "approximate", "auto")
MAX_K = 1000


def search_library():
    """(search, MapPoint) of :mod:`samembed.search`, or ``None`` where it is not there."""
    try:
        from ..search import MapPoint, search
    except ImportError:
        return None
    return search, MapPoint


def queries(values: list[str], map_point) -> list:
    """Query strings of the page as the library takes them: ``row:N`` a row number, ``map:X,Y`` a
    map point, anything else an image or chip id."""
    out = []
    for text in values:
        if text.startswith("row:") and text[4:].isdigit():
            out.append(int(text[4:]))
        elif text.startswith("map:"):
            try:
                x, y = (float(v) for v in text[4:].split(","))
            except ValueError:
                raise BadRequest(f"a map point is map:X,Y, not {text[:60]!r}") from None
            out.append(map_point(x, y))
        else:
            out.append(text)
    return out


def heat_png(heat: np.ndarray) -> bytes:
    """(H, W) float similarity -> a PNG of it in matplotlib's viridis, scaled to its range."""
    from matplotlib import colormaps

    from .images import png

    finite = np.isfinite(heat)
    low, high = (float(heat[finite].min()), float(heat[finite].max())) if finite.any() else (0.0, 1.0)
    scaled = np.where(finite, (heat - low) / (high - low if high > low else 1.0), 0)
    rgba = (colormaps["viridis"](scaled) * 255).astype(np.uint8)
    rgba[..., 3] = np.where(finite, 170, 0)
    return png(rgba)


def _search(view, params, k: int) -> dict:
    library = search_library()
    search, map_point = library
    mode = params.get("mode", "neighbours")
    granularity = params.get("granularity", "image")
    index = params.get("index", "auto")
    for name, value, allowed in (("mode", mode, MODES), ("granularity", granularity, GRANULARITIES),
                                 ("index", index, INDEXES)):
        if value not in allowed:
            raise BadRequest(f"{name} is one of {', '.join(allowed)}")
    positives = queries(params.getlist("positive"), map_point)
    if not positives:
        raise BadRequest("select at least one image, chip or map cell (positive=...)")
    result = search(view.group, positives, queries(params.getlist("negative"), map_point), mode=mode,
                     granularity=granularity, feature=params.get("feature") or None, k=k, index=index)
    hits = json.loads(result.hits.to_json(orient="records"))
    out = {"hits": hits, "description": result.description, "crs": result.crs,
           "heat_transform": list(result.heat_transform) if result.heat_transform is not None else None}
    if result.heat_map is not None:
        out["heat_map"] = data_url(heat_png(np.asarray(result.heat_map, dtype=np.float32)))
        out["heat_shape"] = list(result.heat_map.shape)
    return out


@route
async def search_route(request: Request):
    """GET /api/groups/{dataset}/{group}/search?positive=..&negative=..&mode&granularity&feature&k&index."""
    if search_library() is None:
        return PlainTextResponse("search is not available: samembed.search is not installed in this samembed\n",
                                 status_code=501)
    view = view_of(request)
    k = query_int(request, "k", 24, 1, MAX_K)
    return JSONResponse(await off_loop(_search, view, request.query_params, k))
