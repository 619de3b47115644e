"""Classification from the cache: the task (:mod:`.task`), its head kinds (:mod:`.kinds`), the
training loops and the metrics."""
