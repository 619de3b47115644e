"""``samembed serve``: the cache, its prompts, search and results in a local web page
(docs/serve.md). Needs the ``serve`` extra (Starlette, uvicorn)."""

from .app import create_app, serve

__all__ = ["create_app", "serve"]
