"""What the machine offers for lsnf's arithmetic: CPU instruction sets, native bf16, torch's
backends. Read-only facts, for the precision warning and the benchmark's header."""

from __future__ import annotations

import platform
from functools import cache
from pathlib import Path
from typing import Any

import torch

from lsnf.config import RunConfig

__all__ = ["BF16_CPU_FLAGS", "CPU_FLAGS", "apply_precision", "cpu_flags", "describe", "native_bf16"]

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


def apply_precision(cfg: RunConfig, device: torch.device) -> None:
    """Set up ``cfg``'s arithmetic on ``device`` (docs/method.md §5.4): the TF32 switch of CUDA
    fp32 matmuls and convolutions (``tf32``), and a warning when bf16 is asked for on a CPU
    without native bf16 instructions, where autocast emulates it slower than fp32."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = cfg.tf32
        torch.backends.cudnn.allow_tf32 = cfg.tf32
    if cfg.precision == "bf16" and not native_bf16(device):
        import sys

        print(
            f"[lsnf] WARNING: precision bf16 on {device}, which has no native bf16 "
            f"(CPU: no avx512_bf16 / amx_bf16): it runs slower than fp32 here. Set "
            f"precision: fp32 (or --set precision=fp32) to run at full speed.",
            file=sys.stderr,
        )
