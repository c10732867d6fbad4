"""Test-time inference throughput against the evaluation batch size (docs/method.md §5.3):
the paper's MNIST and SVHN shapes, flow prior, eval mode, noise-free, fp32, 1000 images, 10
Langevin steps; images per second, best of 2 interleaved passes. Usage: eval_batch_size.py
THREADS."""

from __future__ import annotations

import sys
import time

import torch
from _common import paper_model

from lsnf.metrics.inference import InferenceSettings, anomaly_scores

SIZES = (25, 50, 100, 250, 500, 1000)
N = 1000

if __name__ == "__main__":
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    torch.set_num_threads(threads)
    for shape in ("mnist", "svhn"):
        model = paper_model(shape).eval()
        with torch.no_grad():
            c, h, w = model.decode(torch.zeros(1, model.latent_dim)).shape[1:]
        g = torch.Generator().manual_seed(0)
        images = torch.randint(0, 256, (N, c, h, w), generator=g, dtype=torch.uint8)
        best = dict.fromkeys(SIZES, float("inf"))
        for _ in range(2):
            for size in SIZES:
                settings = InferenceSettings(steps=10, step_size=0.1, batch_size=size)
                t = time.perf_counter()
                anomaly_scores(model, images, settings)
                best[size] = min(best[size], time.perf_counter() - t)
        rates = " ".join(f"b{size}: {N / t:.0f}/s" for size, t in best.items())
        print(f"{shape} threads={threads} {rates}", flush=True)
