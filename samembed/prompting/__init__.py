"""Prompt segmentation from the cache: SAM's prompt encoder and mask decoder on cached image
embeddings (:class:`.predictor.CachePredictor`), prompts from the command line or files
(:mod:`.prompts`), masks written as PNG, GeoTIFF and GeoJSON (:mod:`.outputs`), and zero-shot
prompts derived from ground truth, scored like trained decoders (:mod:`.zero_shot`)."""
