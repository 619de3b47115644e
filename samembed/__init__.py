"""samembed: frozen foundation-model embeddings for remote sensing.

Extract once into a Zarr cache (:func:`extract`), then train heads from it many times
(:func:`train_head`, :func:`sweep`; raw arrays: :func:`open_cache`), and report on the runs
(:func:`write_report`); :func:`prompt` answers SAM's point and box prompts from the cache
(:func:`iter_prompts` streams many);
:func:`run_study` runs a checked-in study file end to end and
:func:`run_demo` does all of it offline on generated data. The names below are imported when
first used, so ``import samembed`` is cheap."""

from .lazy import lazy_attributes
from .version import __version__

__getattr__ = lazy_attributes(__name__, {
    "SamembedError": ".errors",
    "export_h5": ".cache", "list_groups": ".cache", "open_cache": ".cache", "verify_cache": ".cache.verify",
    "available_datasets": ".datasets", "load_dataset": ".datasets", "make_synthetic_dataset": ".datasets",
    "available_encoders": ".encoders", "create_encoder": ".encoders", "write_tiny_checkpoint": ".encoders",
    "ExtractResult": ".extraction", "extract": ".extraction",
    "sweep": ".experiments.sweep", "train_head": ".experiments.sweep",
    "available_heads": ".heads",
    "write_report": ".report",
    "run_study": ".study",
    "prompt": ".prompting.run", "iter_prompts": ".prompting.run",
    "run_demo": ".demo",
})

__all__ = [
    "ExtractResult", "SamembedError", "__version__", "available_datasets", "available_encoders", "available_heads",
    "create_encoder", "export_h5", "extract", "iter_prompts", "list_groups", "load_dataset", "make_synthetic_dataset",
    "open_cache", "prompt", "run_demo", "run_study", "sweep", "train_head", "verify_cache", "write_report", "write_tiny_checkpoint",
]
