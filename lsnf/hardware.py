"""The machine lsnf's arithmetic runs on: what it offers (CPU instruction sets, native bf16,
torch's backends; read-only facts for the precision warning and the benchmark's header), and
the one setup of a device that every command running a network goes through
(:func:`setup_device`: the device checked, TF32 and determinism as configured)."""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import torch

from lsnf.config import RunConfig
from lsnf.errors import UserError

__all__ = [
    "BF16_CPU_FLAGS",
    "CPU_FLAGS",
    "CUBLAS_WORKSPACE",
    "apply_precision",
    "cpu_flags",
    "describe",
    "exact_fp32",
    "native_bf16",
    "resolve_device",
    "setup_device",
]

# cuBLAS's deterministic workspace setting (torch.use_deterministic_algorithms needs one of
# ":4096:8" or ":16:8" in CUBLAS_WORKSPACE_CONFIG before the first cuBLAS call on CUDA >= 10.2)
CUBLAS_WORKSPACE = ":4096:8"

CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")  # bf16 dot products in hardware


@cache
def _cpuinfo_lines() -> tuple[str, ...]:
    """Linux ``/proc/cpuinfo``, read once (empty elsewhere)."""
    info = Path("/proc/cpuinfo")
    return tuple(info.read_text().splitlines()) if info.is_file() else ()


def _cpuinfo(key: str) -> str:
    """The first ``key`` field of ``/proc/cpuinfo`` ('' if absent)."""
    return next(
        (line.split(":", 1)[1].strip() for line in _cpuinfo_lines() if line.startswith(key)), ""
    )


def cpu_flags() -> frozenset[str]:
    """The CPU's instruction-set flags (Linux ``/proc/cpuinfo``; empty elsewhere)."""
    return frozenset(_cpuinfo("flags").split())


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 in hardware (CUDA: ``is_bf16_supported``; CPU: one of
    :data:`BF16_CPU_FLAGS`)."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    return any(f in cpu_flags() for f in BF16_CPU_FLAGS)


def describe() -> dict[str, Any]:
    """The CPU model, its relevant flags, torch's CPU capability, threads and backends."""
    return {
        "cpu": _cpuinfo("model name") or platform.processor() or platform.machine(),
        "flags": {f: f in cpu_flags() for f in CPU_FLAGS},
        "native_bf16": native_bf16(torch.device("cpu")),
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
        "mkldnn": torch.backends.mkldnn.is_available(),
        "mkl": torch.backends.mkl.is_available(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def _visible_cuda() -> str:
    """The CUDA devices this process sees, for error messages."""
    count = torch.cuda.device_count()
    names = [f"cuda:{i} ({torch.cuda.get_device_name(i)})" for i in range(count)]
    mask = os.environ.get("CUDA_VISIBLE_DEVICES")
    shown = ", ".join(names) or "none"
    return shown + (f"; CUDA_VISIBLE_DEVICES={mask}" if mask is not None else "")


def resolve_device(name: str) -> torch.device:
    """The configured device, or a clear error if it is not available here: no CUDA at all,
    or a ``cuda:N`` beyond the devices this process sees (a SLURM allocation shows its GPUs as
    cuda:0 .. cuda:K-1, whatever their number on the node)."""
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(
                f"device {name!r} is configured but no CUDA device is visible on this machine; "
                f"set device: cpu (or --set device=cpu) to run here"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UserError(
                f"device {name!r} is configured but this process sees {_visible_cuda()}; "
                f"set device: cuda (the first visible GPU) or cuda:N with N below "
                f"{torch.cuda.device_count()}"
            )
    return device


def setup_device(cfg: RunConfig, name: str | None = None) -> torch.device:
    """Check and set up the device of a command that runs a network (docs/method.md §5.4),
    the same way for training, evaluation, 2s-ABP and the FID reference and floor: ``name``
    (default ``cfg.device``) resolved by :func:`resolve_device` and made CUDA's current device
    (torch-fidelity's ``.cuda()`` goes there), TF32 as ``cfg.tf32``, determinism as
    ``cfg.deterministic``, and the bf16 warning."""
    device = resolve_device(name or cfg.device)
    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device)
    apply_precision(cfg, device)
    return device


@contextmanager
def exact_fp32() -> Iterator[None]:
    """CUDA fp32 matmuls and convolutions without TF32 inside (restored after): FID features
    are computed this way by every command, whatever a model's ``tf32`` (docs/method.md §5.4).
    No effect on a CPU."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def apply_precision(cfg: RunConfig, device: torch.device) -> None:
    """Set up ``cfg``'s arithmetic on ``device`` (docs/method.md §5.4): the TF32 switch of CUDA
    fp32 matmuls and convolutions (``tf32``); with ``deterministic``, deterministic algorithms
    only (an op without one raises, naming it), cuDNN's deterministic convolutions without
    autotuning, and cuBLAS's deterministic workspace (:data:`CUBLAS_WORKSPACE`); and a warning
    when bf16 is asked for on a CPU without native bf16 instructions, where autocast emulates it
    slower than fp32."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = cfg.tf32
        torch.backends.cudnn.allow_tf32 = cfg.tf32
    if cfg.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    torch.use_deterministic_algorithms(cfg.deterministic)
    torch.backends.cudnn.deterministic = cfg.deterministic
    torch.backends.cudnn.benchmark = False
    if cfg.precision == "bf16" and not native_bf16(device):
        print(
            f"[lsnf] WARNING: precision bf16 on {device}, which has no native bf16 "
            f"(CPU: no avx512_bf16 / amx_bf16): it runs slower than fp32 here. Set "
            f"precision: fp32 (or --set precision=fp32) to run at full speed.",
            file=sys.stderr,
        )
