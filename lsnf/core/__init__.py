"""The model and its maths (docs/method.md §1–§5): the Glow-style flow, the priors, the generators,
Langevin inference, the latent model, evaluation noise, pixel scales, masks, and the inference,
completion and sampling every caller shares. No files, no tracking, no tables."""
