"""samembed: frozen foundation-model embeddings for remote sensing.

Extract once into a Zarr cache (:func:`extract`), then read it many times (:func:`open_cache`).
"""

__version__ = "0.1.0"

from .cache import export_h5, list_groups, open_cache  # noqa: E402
from .datasets import available_datasets, load_dataset, make_synthetic_dataset  # noqa: E402
from .encoders import available_encoders, create_encoder, write_tiny_checkpoint  # noqa: E402
from .errors import SamembedError  # noqa: E402
from .extraction import ExtractResult, extract  # noqa: E402

__all__ = [
    "ExtractResult", "SamembedError", "available_datasets", "available_encoders", "create_encoder",
    "export_h5", "extract", "list_groups", "load_dataset", "make_synthetic_dataset", "open_cache",
    "write_tiny_checkpoint",
]
