"""A small classifier trained on the dataset, whose penultimate layer is the domain FID space.

Inception-v3 FID is the published metric (docs/method.md §7.3) but costs ~0.3-1 s per image on these
CPUs. For offline runs and CI, FID is also computed in the feature space of this classifier
(``lsnf-domain-cnn``). Such an FID ranks models on the same data but is not comparable with
published numbers; results say so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from lsnf.config import DataConfig
from lsnf.core.pixels import to_model_scale
from lsnf.data.splits import ImageSplit, load_split
from lsnf.errors import UserError
from lsnf.io import atomic_write_bytes

__all__ = ["DomainCNN", "train_domain_extractor", "write_domain_extractor"]


class DomainCNN(nn.Module):
    """Conv classifier: two conv/pool blocks, a 128-d penultimate layer, a linear head."""

    def __init__(self, in_channels: int, n_classes: int, width: int = 32, features: int = 128):
        super().__init__()
        self.trunk = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),
            nn.Linear(2 * width * 16, features),
            nn.ReLU(),
        )
        self.head = nn.Linear(features, n_classes)

    def features(self, x: Tensor) -> Tensor:
        return self.trunk(x)  # (B, features)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.trunk(x))  # (B, n_classes)


@torch.no_grad()
def _accuracy(net: DomainCNN, split: ImageSplit, batch_size: int = 500) -> float:
    net.eval()
    correct = 0
    for start in range(0, len(split), batch_size):
        x = to_model_scale(split.images[start : start + batch_size])  # (B, C, H, W)
        correct += int((net(x).argmax(1) == split.labels[start : start + batch_size]).sum())
    return correct / len(split)


def train_domain_extractor(
    train: ImageSplit,
    test: ImageSplit,
    n_classes: int,
    epochs: int = 3,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
) -> dict[str, Any]:
    """Train :class:`DomainCNN` on ``train`` (cross-entropy, Adam); return a weights-only state
    with its test accuracy, loadable with ``torch.load(weights_only=True)``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = DomainCNN(train.shape[0], n_classes)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    order_rng = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        net.train()
        order = torch.randperm(len(train), generator=order_rng)
        for start in range(0, len(train), batch_size):
            idx = order[start : start + batch_size]
            x = to_model_scale(train.images[idx])  # (B, C, H, W)
            loss = nn.functional.cross_entropy(net(x), train.labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return {
        "format": "lsnf-domain-extractor-1",
        "state_dict": net.state_dict(),
        "in_channels": train.shape[0],
        "n_classes": n_classes,
        "train": train.meta,
        "test_accuracy": _accuracy(net, test),
        "test": test.meta,
        "epochs": epochs,
        "seed": seed,
    }


def write_domain_extractor(data: DataConfig, epochs: int, seed: int, out: str | Path) -> None:
    """Train the extractor on the dataset's standard train split (every image, no held-out
    digit), measure its accuracy on the test split, and save it to ``out``."""
    data = data.model_copy(update={"protocol": "standard", "limit": None})
    train, test = load_split(data, "train"), load_split(data, "test")
    if len(train.labels.unique()) < 2:
        raise UserError(
            f"the domain FID extractor is a classifier of the data's classes, and "
            f"{train.meta['dataset']} has one class: give it classes (data.folder.labels: "
            f"classes, one sub-folder each) or use fid.extractor: inception-v3-compat"
        )
    state = train_domain_extractor(train, test, int(train.labels.max()) + 1, epochs, seed=seed)
    atomic_write_bytes(out, lambda fh: torch.save(state, fh))
    print(f"[lsnf] domain extractor: test accuracy {state['test_accuracy']:.4f} on {len(test)}")
