"""The latent-variable model: a prior p(z) and a generator p(x|z) = N(g(z), sigma^2 I).

docs/method.md §1. With ``prior.kind: flow`` this is LFBM; ``gaussian`` gives ABP and ``ebm``
LEBM — one code path for all three (§3). Nothing here reads or writes files.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from lsnf.config import RunConfig
from lsnf.core.generators import build_generator
from lsnf.core.langevin import LangevinTrace, frozen, langevin, posterior_energy
from lsnf.core.noise import RandomSource, standard_normal
from lsnf.core.priors import Prior, build_prior

__all__ = [
    "LatentModel",
    "batchnorm_statistics_kept",
    "build_model",
    "compile_seconds",
    "infer_posterior",
]


class LatentModel(nn.Module):
    """Top-down model ``z ~ p(z)``, ``x = g(z) + e``, ``e ~ N(0, sigma^2 I)``."""

    def __init__(
        self,
        generator: nn.Module,
        prior: Prior,
        sigma: float,
        precision: str = "fp32",
        compile: bool = False,
    ) -> None:
        super().__init__()
        self.generator = generator
        self.prior = prior
        self.sigma = sigma
        self.precision = precision
        self.compile = compile  # Langevin energies through torch.compile (docs/method.md §5.5)

    @property
    def latent_dim(self) -> int:
        return self.prior.dim

    def decode(self, z: Tensor) -> Tensor:
        """``g(z)`` (B, C, H, W) in the latents' dtype. With ``precision="bf16"`` the generator
        runs under autocast, its matmuls and convolutions in bf16, and its output is cast back,
        so energies, the prior, the latents and the optimiser state stay fp32 (docs/method.md
        §5.4)."""
        if self.precision == "bf16":
            with torch.autocast(z.device.type, dtype=torch.bfloat16):
                x = self.generator(z)  # (B, C, H, W) bf16 or fp32 by layer
            return x.to(z.dtype)
        return self.generator(z)

    def frozen_decode(self) -> Callable[[Tensor], Tensor]:
        """``decode`` for while the parameters stay as they are now and frozen (the Langevin
        steps): with ``precision="bf16"`` the weights that autocast would cast at every call
        (those of linear and (transposed) convolution layers) are cast to bf16 once, here, and
        the generator runs on those copies under autocast; same values as ``decode``
        (docs/method.md §5.4). With fp32, ``decode`` itself."""
        if self.precision != "bf16":
            return self.decode
        layers = (nn.Linear, nn.modules.conv._ConvNd)
        cast = {
            f"{name}.{key}": p.detach().to(torch.bfloat16)
            for name, m in self.generator.named_modules()
            if isinstance(m, layers)
            for key, p in m.named_parameters(recurse=False)
        }  # each weight once, not once per step

        def decode(z: Tensor) -> Tensor:  # (B, d) -> (B, C, H, W) in z's dtype
            with torch.autocast(z.device.type, dtype=torch.bfloat16):
                x = torch.func.functional_call(self.generator, cast, (z,), strict=False)
            return x.to(z.dtype)

        return decode

    def energy(self, z: Tensor, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """Posterior energy ``-log p(z|x) + const`` per example (docs/method.md eq. 5.2)."""
        return posterior_energy(z, x, self.decode, self.prior.neg_log_prob, self.sigma, mask)

    @torch.no_grad()
    def sample(self, n: int, generator: RandomSource = None) -> Tensor:
        """Ancestral samples ``x = g(z)``, ``z ~ p(z)`` (docs/method.md §1), (n, C, H, W)."""
        return self.decode(self.prior.sample(n, generator))


def infer_posterior(
    model: LatentModel,
    x: Tensor,
    steps: int,
    step_size: float,
    noise: bool,
    generator: RandomSource,
    mask: Tensor | None = None,
    z0: Tensor | None = None,
    record: bool = False,
) -> tuple[Tensor, LangevinTrace]:
    """Short-run Langevin on p(z|x) from ``z0 ~ N(0, I)`` (docs/method.md §5).

    Learning uses ``noise=True`` and K steps (§5.1); test-time inference ``noise=False`` and
    K_test steps (§5.3). ``mask`` (broadcastable to x, 1 = observed) restricts the likelihood
    to observed pixels (inpainting, recovery). ``generator``: the batch's, or each example's
    stream (``lsnf.core.noise.ExampleNoise``, evaluation).
    """
    if z0 is None:
        z0 = standard_normal((x.shape[0], model.latent_dim), generator, x.device, x.dtype)
    with frozen(model), batchnorm_statistics_kept(model), torch.enable_grad():
        if model.compile:  # the compiler does the folding (§5.5)
            energy = _compiled_energy(model, x, mask)
        else:
            prior_energy = model.prior.frozen_neg_log_prob()  # parameter-only terms once (§2.6)
            decode = model.frozen_decode()  # bf16: the weights cast once (§5.4)

            def energy(z: Tensor) -> Tensor:  # (B, d) -> (B,)
                return posterior_energy(z, x, decode, prior_energy, model.sigma, mask)

        return langevin(z0, energy, steps, step_size, noise, generator, record)


def _posterior_energy_of(model: LatentModel, z: Tensor, x: Tensor, mask: Tensor | None) -> Tensor:
    """(5.2) of ``model`` at z (B, d): the function :func:`_compiled_energy` compiles."""
    return posterior_energy(z, x, model.decode, model.prior.neg_log_prob, model.sigma, mask)


_COMPILED: dict[str, Callable[..., Tensor]] = {}  # per device type, for the whole process


def _compiled_energy(model: LatentModel, x: Tensor, mask: Tensor | None) -> Callable[..., Tensor]:
    """The posterior energy through ``torch.compile`` (docs/method.md §5.5): one compiled
    function per device type and process, the batch dimension dynamic (any batch size, no
    recompilation); on CUDA with CUDA graphs (``mode="reduce-overhead"``). It guards on the
    model's modes (train/eval, its BatchNorm statistics), so learning, validation and
    evaluation each compile once."""
    kind = x.device.type
    if kind not in _COMPILED:
        mode = "reduce-overhead" if kind == "cuda" else None
        _COMPILED[kind] = torch.compile(_posterior_energy_of, dynamic=True, mode=mode)
    compiled = _COMPILED[kind]

    def energy(z: Tensor) -> Tensor:  # (B, d) -> (B,)
        if kind == "cuda":  # a new step: CUDA graphs may reuse the last step's output memory
            torch.compiler.cudagraph_mark_step_begin()
        return compiled(model, z, x, mask)

    return energy


def compile_seconds() -> float | None:
    """Seconds this process has spent compiling (TorchDynamo + Inductor, forward and backward
    graphs), from torch's compile-time metrics; None if torch does not report them."""
    from torch._dynamo.utils import compilation_time_metrics as metrics

    keys = ("_compile.compile_inner", "compile_fx.<locals>.bw_compiler")
    if keys[0] not in metrics:
        return None
    return float(sum(sum(metrics.get(k, [])) for k in keys))


@contextmanager
def batchnorm_statistics_kept(module: nn.Module) -> Iterator[None]:
    """BatchNorm layers in train mode normalise with batch statistics but do not update their
    running statistics (docs/method.md §6.4).

    The K Langevin passes of a learning iteration run at latents that are not yet posterior
    samples; only the learning step's forward pass at ``z^K`` updates the running statistics
    that test-time inference (eval mode) uses. Eval-mode layers are unaffected.
    """
    batchnorm = nn.modules.batchnorm._BatchNorm
    layers = [m for m in module.modules() if isinstance(m, batchnorm) and m.track_running_stats]
    for m in layers:
        m.track_running_stats = False
    try:
        yield
    finally:
        for m in layers:
            m.track_running_stats = True


def build_model(cfg: RunConfig) -> LatentModel:
    """Build the model of ``cfg`` with parameters drawn from ``cfg.seed``.

    Initialisation uses a forked global RNG, so building a model never disturbs other code.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        generator = build_generator(cfg.model)
        prior = build_prior(cfg.prior, cfg.model.latent_dim)
    return LatentModel(generator, prior, cfg.model.sigma, cfg.precision, cfg.compile)
