"""The generators' shapes without torch: the layer tables of the conv-stack generators
(docs/method.md §4) and the image size each generator produces, so that the workflow's planner
refuses a config whose images no generator of it can make before any job runs
(:func:`lsnf.pipeline.plan.check_experiment`). :mod:`lsnf.core.generators` builds the networks.
"""

from __future__ import annotations

__all__ = ["CONV_STACKS", "GENERATED_SIZES", "ConvLayer"]

# One transposed convolution per row: (output channels as a multiple of ngf, 0 = the image's
# channels; kernel; stride; padding). Every layer but the last is followed by LeakyReLU(0.2),
# the last by Tanh. Spatial sizes from a 1x1 latent in the comments (docs/method.md §4).
ConvLayer = tuple[int, int, int, int]
CONV_STACKS: dict[str, tuple[ConvLayer, ...]] = {
    "svhn": ((8, 4, 1, 0), (4, 4, 2, 1), (2, 4, 2, 1), (0, 4, 2, 1)),  # 4, 8, 16, 32
    "cifar10": ((8, 8, 1, 0), (4, 4, 2, 1), (2, 4, 2, 1), (0, 3, 1, 1)),  # 8, 16, 32, 32
    "celeba64": ((8, 4, 1, 0), (4, 4, 2, 1), (2, 4, 2, 1), (1, 4, 2, 1), (0, 4, 2, 1)),  # 4..64
    "celebahq256": (
        (16, 4, 1, 0),
        (8, 4, 2, 1),
        (4, 4, 2, 1),
        (2, 4, 2, 1),
        (1, 4, 2, 1),
        (1, 4, 2, 1),
        (0, 4, 2, 1),
    ),  # 4, 8, 16, 32, 64, 128, 256
}


def _stack_size(layers: tuple[ConvLayer, ...]) -> int:
    """Height = width after ``layers`` from a 1x1 latent: ``(h - 1)·stride - 2·padding + kernel``
    per transposed convolution."""
    size = 1
    for _, kernel, stride, padding in layers:
        size = (size - 1) * stride - 2 * padding + kernel
    return size


# The image height = width of every generator of lsnf.core.generators.GENERATORS; None: any size
# (``linear``, an affine map to model.image_size).
GENERATED_SIZES: dict[str, int | None] = {
    **{name: _stack_size(layers) for name, layers in CONV_STACKS.items()},
    "mnist": 28,
    "linear": None,
}
