"""What a number means: FID/KID and precision/recall features and statistics, the domain extractor,
hole metrics, grids, trivial references, and the statistics (bootstrap, intervals) behind every
comparison."""
