"""A trained model into results (docs/method.md §7): the registry of evaluations (torch-free), the
evaluations themselves, and the self-identifying result files."""
