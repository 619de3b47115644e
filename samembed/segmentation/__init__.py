"""Binary segmentation from the cache: mask geometry, metrics, decoders' training and the runs."""
