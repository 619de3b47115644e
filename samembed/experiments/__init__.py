"""Experiments on cached embeddings, whatever the task: the experiment base and its run loop,
head kinds, the runs store, reading embeddings, optimisers, and ``train_head``/``sweep``."""
