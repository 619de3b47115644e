"""What every exported file says about where its numbers come from: the model and its weights, the
input size and preprocessing, the cache group's signature id and generation, samembed's version.
Read from the group's signature, so an export names exactly what the cache holds."""

from __future__ import annotations

from ..cache.reader import CacheGroup
from ..errors import MissingExtraError
from ..hashing import short_hash
from ..version import __version__

# Public pages of the encoders' weights, for the conventions' model URL (geoemb:model, emb:model).
MODEL_URLS = {
    "sam": "https://github.com/facebookresearch/segment-anything",
    "sam2": "https://github.com/facebookresearch/sam2",
    "dinov2": "https://github.com/facebookresearch/dinov2",
    "dinov3": "https://github.com/facebookresearch/dinov3",
    "vgg19": "https://pytorch.org/vision/stable/models/generated/torchvision.models.vgg19.html",
    "prithvi": "https://huggingface.co/ibm-nasa-geospatial",
}
SAMEMBED_URL = "https://github.com/samembed/samembed"  # models of no published page (tests' toy encoders)


def require_geo() -> None:
    """One line naming the extra when pyarrow or shapely is missing."""
    try:
        import pyarrow  # noqa: F401
        import shapely  # noqa: F401
    except ImportError as err:
        raise MissingExtraError(f"GeoParquet and STAC export need pyarrow and shapely ({err.name} is missing): "
                                'pip install "samembed[geo]"') from None


def provenance(group: CacheGroup) -> dict:
    """The provenance of ``group``'s embeddings (JSON-serialisable)."""
    signature = group.signature
    encoder = signature.get("encoder", {})
    return {
        "dataset": group.dataset,
        "cache_group": group.name,
        "signature_id": short_hash(signature),
        "generation": group.generation,
        "model": encoder.get("encoder"),
        "model_url": model_url(encoder.get("encoder")),
        "variant": encoder.get("variant") or encoder.get("weights"),
        "weights_sha256": encoder.get("checkpoint_sha256"),
        "img_size": encoder.get("img_size"),
        "preprocessing": encoder.get("preprocessing"),
        "composite": signature.get("composite") or signature.get("bands"),
        "storage_dtype": signature.get("dtype", "float16"),
        "samembed_version": __version__,
    }


def model_url(name: str | None) -> str:
    return MODEL_URLS.get(name or "", SAMEMBED_URL)
