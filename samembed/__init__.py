"""samembed: frozen foundation-model embeddings for remote sensing.

Extract once into a Zarr cache (:func:`extract`), then train heads from it many times
(:func:`train_head`, :func:`sweep`; raw arrays: :func:`open_cache`), and report on the runs
(:func:`write_report`); :func:`run_demo` does all of it offline on generated data.
"""

__version__ = "0.1.0"

from .cache import export_h5, list_groups, open_cache  # noqa: E402
from .datasets import available_datasets, load_dataset, make_synthetic_dataset  # noqa: E402
from .encoders import available_encoders, create_encoder, write_tiny_checkpoint  # noqa: E402
from .errors import SamembedError  # noqa: E402
from .extraction import ExtractResult, extract  # noqa: E402
from .experiments.sweep import sweep, train_head  # noqa: E402
from .heads import available_heads  # noqa: E402
from .report import write_report  # noqa: E402
from .demo import run_demo  # noqa: E402

__all__ = [
    "ExtractResult", "SamembedError", "available_datasets", "available_encoders", "available_heads",
    "create_encoder", "export_h5", "extract", "list_groups", "load_dataset", "make_synthetic_dataset",
    "open_cache", "run_demo", "sweep", "train_head", "write_report", "write_tiny_checkpoint",
]
