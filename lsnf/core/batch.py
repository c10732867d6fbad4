"""The evaluation batch size: a speed setting alone (docs/method.md §5.3).

Every example's z0, noise and prior samples are its own (lsnf.core.noise), so with BatchNorm on its
running statistics no number depends on how many examples share a batch. ``batch_size: null``
(the default) picks by device:

- CPU: 100, measured (docs/results.md, "Evaluation batch size"): within 10% of the best
  throughput at the paper's MNIST and SVHN shapes, one thread;
- CUDA: up to 1000, fewer where the GPU's free memory would not hold them (half of what is free,
  from the peak memory of one probe Langevin step). Not yet measured on a GPU: ``.ci/gpu-check``
  will (the GPU issue).
"""

from __future__ import annotations

import torch

__all__ = ["CPU_BATCH", "CUDA_BATCH", "MEMORY_SHARE", "evaluation_batch_size", "memory_cap"]

CPU_BATCH = 100
CUDA_BATCH = 1000
MEMORY_SHARE = 0.5  # of the free GPU memory, for one batch's inference
_PROBE = 16  # examples in the probe step that measures the memory per example


def memory_cap(wanted: int, bytes_per_example: int, free_bytes: int) -> int:
    """The largest batch, at most ``wanted``, whose inference fits in ``MEMORY_SHARE`` of
    ``free_bytes`` at ``bytes_per_example``; at least 1."""
    if bytes_per_example <= 0:
        return wanted
    return max(1, min(wanted, int(MEMORY_SHARE * free_bytes) // bytes_per_example))


def _bytes_per_example(model: torch.nn.Module, device: torch.device) -> int:
    """Peak CUDA memory of one posterior Langevin step at ``_PROBE`` examples, per example."""
    from lsnf.core.model import LatentModel, infer_posterior

    assert isinstance(model, LatentModel)
    z0 = torch.zeros(_PROBE, model.latent_dim, device=device)  # (B, d)
    with torch.no_grad():
        x = model.decode(z0)  # (B, C, H, W)
    torch.cuda.synchronize(device)
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    infer_posterior(model, x, 1, 0.1, False, None, z0=z0)
    torch.cuda.synchronize(device)
    return (torch.cuda.max_memory_allocated(device) - base) // _PROBE


def evaluation_batch_size(requested: int | None, model: torch.nn.Module) -> int:
    """``requested``, or the device's default (module docstring) where it is None."""
    if requested is not None:
        return requested
    device = next(model.parameters()).device
    if device.type != "cuda":
        return CPU_BATCH
    free, _ = torch.cuda.mem_get_info(device)
    return memory_cap(CUDA_BATCH, _bytes_per_example(model, device), free)
