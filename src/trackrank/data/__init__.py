"""Stage 1: the catalog, its audio and its CQT features (validation, split, shards, patch cache)."""
