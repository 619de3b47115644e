"""``create_app``: the Starlette application of ``samembed serve`` (its routes, the guard, the
page's own files), and ``serve``: it under uvicorn."""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

from ..errors import MissingExtraError, UsageError
from ..paths import DEFAULT_CACHE_DIR, DEFAULT_RUNS_DIR

DEFAULT_PORT = 8765
DEFAULT_OUT = Path("served")
#: The page's files, by name (served from the package, never from a path in the request).
STATIC_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}


def _need_starlette():
    try:
        import starlette  # noqa: F401
    except ImportError:
        raise MissingExtraError('samembed serve needs Starlette and uvicorn: pip install "samembed[serve]"') from None


def static_files() -> dict[str, tuple[bytes, str]]:
    """name -> (content, media type) of every file in ``samembed/serve/static``."""
    files = {}
    for entry in resources.files(__package__).joinpath("static").iterdir():
        suffix = Path(entry.name).suffix
        if entry.is_file() and suffix in STATIC_TYPES:
            files[entry.name] = (entry.read_bytes(), STATIC_TYPES[suffix])
    return files


def create_app(cache_dir: str | Path = DEFAULT_CACHE_DIR, runs_dir: str | Path = DEFAULT_RUNS_DIR,
               out_dir: str | Path = DEFAULT_OUT, *, token: str | None = None,
               hosts: tuple[str, ...] = ("127.0.0.1", "localhost", "::1", "[::1]"),
               checkpoint: str | Path | None = None):
    """The ASGI application over the cache in ``cache_dir`` and the runs store in ``runs_dir``;
    masks and reports are written into ``out_dir``. ``token``: every request must carry it (any
    address other than loopback); ``hosts``: the Host headers accepted (empty: any)."""
    _need_starlette()
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from . import browse, prompt, results, search
    from .common import not_found
    from .security import Guard
    from .state import ServerState

    files = static_files()

    async def page(request: Request):
        content, media = files["index.html"]
        return Response(content, media_type=media)

    async def static(request: Request):
        found = files.get(request.path_params["name"])
        return Response(found[0], media_type=found[1]) if found else not_found()

    group = "/api/groups/{dataset}/{group}"
    routes = [
        Route("/", page),
        Route("/static/{name}", static),
        Route("/api/groups", browse.groups),
        Route(group + "/images", browse.images),
        Route(group + "/images/{row}", browse.image_info),
        Route(group + "/lookup", browse.image_info),
        Route(group + "/images/{row}/image.png", browse.image),
        Route(group + "/images/{row}/truth.png", browse.truth),
        Route(group + "/images/{row}/prompt", prompt.prompt_image, methods=["POST"]),
        Route(group + "/images/{row}/save", prompt.save_mask, methods=["POST"]),
        Route(group + "/scenes", browse.scenes),
        Route(group + "/scenes/{scene}/image.png", browse.scene_image),
        Route(group + "/scenes/{scene}/prompt", prompt.prompt_scene, methods=["POST"]),
        Route(group + "/search", search.search_route),
        Route("/api/results", results.tables),
        Route("/api/results/report", results.report, methods=["POST"]),
        Route("/api/results/figures/{name}", results.figure),
        Route("/api/results/segmentation", results.segmentation),
        Route("/api/results/runs/{run}/confusion", results.confusion_cell),
        Route("/api/results/runs/{run}/predictions/{k}.png", results.prediction),
    ]

    async def missing(request, exc):
        return not_found()

    app = Starlette(routes=routes, exception_handlers={404: missing})
    app.state.samembed = ServerState(cache_dir, runs_dir, out_dir, checkpoint)
    return Guard(app, token, hosts)


def serve(cache_dir: str | Path = DEFAULT_CACHE_DIR, runs_dir: str | Path = DEFAULT_RUNS_DIR,
          out_dir: str | Path = DEFAULT_OUT, *, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
          token: str | None = None, checkpoint: str | Path | None = None, echo=print) -> None:
    """Serve the cache at http://HOST:PORT/ until interrupted. On loopback no token is needed;
    any other ``host`` gets ``token`` (a new random one by default), printed in the address."""
    from .security import is_loopback, new_token

    _need_starlette()
    try:
        import uvicorn
    except ImportError:
        raise MissingExtraError('samembed serve needs Starlette and uvicorn: pip install "samembed[serve]"') from None
    if not 0 < port < 65536:
        raise UsageError(f"--port is between 1 and 65535, not {port}")
    loopback = is_loopback(host)
    if not loopback and token is None:
        token = new_token()
    hosts = ("127.0.0.1", "localhost", "::1", "[::1]") if loopback else ()
    app = create_app(cache_dir, runs_dir, out_dir, token=token, hosts=hosts, checkpoint=checkpoint)
    shown = "localhost" if host in ("0.0.0.0", "::") else host
    address = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    echo(f"samembed serve: {cache_dir} (runs {runs_dir}, writes into {out_dir}) at {address}")
    if token:
        echo("anyone with this address (token included) can use the server: share it like a password")
    sys.stdout.flush()
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
