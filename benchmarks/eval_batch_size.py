"""Test-time inference throughput against the evaluation batch size (docs/method.md §5.3):
the paper's MNIST and SVHN shapes, flow prior, eval mode, noise-free, fp32, 1000 images, 10
Langevin steps; images per second, best of 2 interleaved passes (CUDA: synchronised), beside
the batch size lsnf.core.batch picks on the device by default.
Usage: eval_batch_size.py [THREADS] [--device cpu|cuda[:N]] [--sizes 25,50,...]."""

from __future__ import annotations

import argparse
import time

import torch
from _common import paper_model

from lsnf.bench import device_sync
from lsnf.core.batch import evaluation_batch_size
from lsnf.core.inference import InferenceSettings, anomaly_scores

SIZES = (25, 50, 100, 250, 500, 1000)
N = 1000

if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("threads", type=int, nargs="?", default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--sizes", default=",".join(map(str, SIZES)), help="comma-separated")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    wait = device_sync(device) or (lambda: None)
    for shape in ("mnist", "svhn"):
        model = paper_model(shape).to(device).eval()
        chosen = evaluation_batch_size(None, model)  # the device's default
        sizes = sorted({*map(int, args.sizes.split(",")), chosen})
        with torch.no_grad():
            c, h, w = model.decode(torch.zeros(1, model.latent_dim, device=device)).shape[1:]
        g = torch.Generator().manual_seed(0)
        images = torch.randint(0, 256, (N, c, h, w), generator=g, dtype=torch.uint8)
        best = dict.fromkeys(sizes, float("inf"))
        for _ in range(2):
            for size in sizes:
                settings = InferenceSettings(steps=10, step_size=0.1, batch_size=size)
                wait()
                t = time.perf_counter()
                anomaly_scores(model, images, settings)
                wait()
                best[size] = min(best[size], time.perf_counter() - t)
        rates = " ".join(f"b{size}: {N / t:.0f}/s" for size, t in best.items())
        print(f"{shape} {device} threads={args.threads} default b{chosen} {rates}", flush=True)
