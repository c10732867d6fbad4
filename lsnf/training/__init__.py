"""A model into its run directory (docs/method.md §6): the learning loop, 2s-ABP's second stage,
validation curves, convergence judgement, checkpoints and recorded failures."""
