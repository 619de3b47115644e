"""What every route shares: a group view from the request, numbers from the query, one-line
errors (404 for anything not held, whatever was asked; 400 with the library's message for a
mistake), work off the event loop."""

from __future__ import annotations

import functools
import json

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from ..errors import SamembedError
from .state import GroupView, NotFound, ServerState, one_line


class BadRequest(Exception):
    """A malformed request (not JSON, a number that is not one): answered 400 in one line."""


def state_of(request: Request) -> ServerState:
    return request.app.state.samembed


def view_of(request: Request) -> GroupView:
    """The group named by the path's ``dataset`` and ``group`` (looked up, never joined)."""
    params = request.path_params
    return state_of(request).view(f"{params['dataset']}/{params['group']}")


def query_int(request: Request, name: str, default: int | None = None, low: int = 0, high: int = 10**9) -> int | None:
    text = request.query_params.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise BadRequest(f"{name} is a whole number, not {text[:40]!r}") from None
    if not low <= value <= high:
        raise BadRequest(f"{name} is between {low} and {high}, not {value}")
    return value


async def json_body(request: Request) -> dict:
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        raise BadRequest("the request body is not JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("the request body is a JSON object")
    return body


def not_found() -> Response:
    return PlainTextResponse("not found\n", status_code=404)


def route(handler):
    """A route whose errors become one line: :class:`NotFound` 404, :class:`BadRequest` and
    samembed errors 400 (``{"error": ...}``)."""

    @functools.wraps(handler)
    async def wrapper(request: Request) -> Response:
        try:
            return await handler(request)
        except NotFound:
            return not_found()
        except BadRequest as err:
            return JSONResponse({"error": str(err)}, status_code=400)
        except SamembedError as err:
            return JSONResponse({"error": one_line(err)}, status_code=400)

    return wrapper


async def off_loop(function, *args, **kwargs):
    """``function(*args, **kwargs)`` in a worker thread (reading, decoding, drawing block)."""
    return await run_in_threadpool(function, *args, **kwargs)


def png_response(data: bytes, timing: str | None = None) -> Response:
    headers = {"Server-Timing": timing} if timing else None
    return Response(data, media_type="image/png", headers=headers)
