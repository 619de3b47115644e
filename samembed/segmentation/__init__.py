"""Binary segmentation from the cache: the task (:mod:`.task`), its head kinds (:mod:`.kinds`),
the decoders' training loop and the metrics."""
