"""Writes to object storage that fail for a moment are tried again (an endpoint that restarts, a
dropped connection), with backoff; what still fails after that ends in one line saying what was
kept. Local disks are never retried: their errors (a full disk) are not transient."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TypeVar

from ..errors import StorageError

T = TypeVar("T")
TRIES = int(os.environ.get("SAMEMBED_STORE_TRIES", 5))
FIRST_WAIT = float(os.environ.get("SAMEMBED_STORE_FIRST_WAIT", 0.5))  # seconds; doubled after each try

# What botocore, aiohttp and Python raise when an endpoint cannot be reached or drops the connection.
TRANSIENT = {
    "EndpointConnectionError", "ConnectionClosedError", "ConnectTimeoutError", "ReadTimeoutError",
    "ClientConnectorError", "ServerDisconnectedError", "ClientOSError", "ClientPayloadError",
    "ConnectionError", "ConnectionResetError", "ConnectionRefusedError", "ConnectionAbortedError",
    "IncompleteReadError", "TimeoutError",
}


def is_transient(err: BaseException) -> bool:
    """Whether ``err`` (or what caused it) is an object store that did not answer for a moment.
    s3fs has raised ``KeyError('error')`` for an endpoint that restarted mid-request."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if type(err).__name__ in TRANSIENT or (isinstance(err, KeyError) and err.args == ("error",)):
            return True
        err = err.__cause__ or err.__context__
    return False


def retrying(action: Callable[[], T], what: str, kept: Callable[[], str] | None = None,
             tries: int | None = None, first_wait: float | None = None) -> T:
    """``action()``, tried up to ``tries`` times while it fails transiently (waiting ``first_wait``
    seconds, then twice as long each time); then :class:`StorageError` naming ``what`` was being
    done and, from ``kept()``, what is safe."""
    tries = TRIES if tries is None else tries
    wait = FIRST_WAIT if first_wait is None else first_wait
    waited = 0.0
    for attempt in range(1, tries + 1):
        try:
            return action()
        except Exception as err:
            if not is_transient(err):
                raise
            if attempt == tries:
                safe = f"; {kept()}" if kept is not None else ""
                raise StorageError(f"the object store did not answer while {what} ({type(err).__name__}, {tries} "
                                   f"tries over {waited:.0f} s){safe}; run the same command again to resume once it "
                                   "answers") from None
            time.sleep(wait)
            waited += wait
            wait *= 2
    raise AssertionError("unreachable")  # pragma: no cover
