"""Pretrained weights that timm fetches from the Hugging Face hub (``dinov2``, ``dinov3``), asked
for once and quietly.

Offline, huggingface_hub retries every request five times with growing pauses and logs each try:
about 25 lines over a minute before samembed could say anything. So the weights are taken from the
hub's local cache when they are there (timm loads that file, no request at all); otherwise the hub
is asked once, with a short timeout and no retry, and when it does not answer the extraction stops
in one line that names ``--checkpoint``. Only then does timm download, with the hub's logging held
to errors."""

from __future__ import annotations

import http.client
import logging
import urllib.error
import urllib.request
from contextlib import contextmanager

from ..download import USER_AGENT, is_fetch_error
from ..errors import CheckpointError

PROBE_TIMEOUT = 5.0  # seconds the hub has to answer the one request that says whether it is there
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")  # what timm fetches from a hub repository, in its order


def timm_pretrained(name: str, what: str, fix: str, **kwargs):
    """``timm.create_model(name, pretrained=True, **kwargs)`` (``name``: a timm model with its
    pretrained tag, e.g. ``vit_small_patch14_dinov2.lvd142m``): from the hub's local cache when the
    weights are there, else downloaded when one quiet request finds the hub. Otherwise
    :class:`CheckpointError`: ``cannot download <what>: <why>; <fix>``."""
    import timm

    config = timm.models.get_pretrained_cfg(name)
    repository = getattr(config, "hf_hub_id", None)
    local = cached_hub_file(repository) if repository else None
    if local is not None:
        return timm.create_model(name, pretrained=True, pretrained_cfg_overlay={"file": local}, **kwargs)
    if repository and (problem := hub_unreachable()) is not None:
        raise CheckpointError(f"cannot download {what}: {problem}; {fix}")
    with _hub_logging(logging.ERROR):
        try:
            return timm.create_model(name, pretrained=True, **kwargs)
        except Exception as err:
            if not is_fetch_error(err):
                raise
            raise CheckpointError(f"cannot download {what} ({type(err).__name__}); {fix}") from None


def cached_hub_file(repository: str) -> str | None:
    """The path of ``repository``'s weights in the hub's local cache, or ``None``."""
    from huggingface_hub import try_to_load_from_cache

    for filename in WEIGHT_FILES:
        path = try_to_load_from_cache(repository, filename)
        if isinstance(path, str):
            return path
    return None


def hub_unreachable(timeout: float = PROBE_TIMEOUT) -> str | None:
    """Why the Hugging Face hub (``HF_ENDPOINT``, default https://huggingface.co) cannot serve
    weights now, from one HEAD request without retries; ``None`` when it answers."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set"
    endpoint = constants.ENDPOINT
    request = urllib.request.Request(endpoint, method="HEAD", headers={"User-Agent": USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=timeout):
            return None
    except urllib.error.HTTPError as err:
        return None if err.code < 500 else f"the Hugging Face hub ({endpoint}) answers HTTP {err.code}"
    except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
        reason = " ".join(str(getattr(err, "reason", err)).split())
        return f"the Hugging Face hub ({endpoint}) cannot be reached ({reason})"


@contextmanager
def _hub_logging(level: int):
    logger = logging.getLogger("huggingface_hub")
    before = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(before)
