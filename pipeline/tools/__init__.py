"""Tools beside the pipeline: benchmarks of the training step, the data loader and the grid (they print what they
measure; no DVC stage runs them)."""
