"""Anomaly detection metrics over per-image scores (docs/method.md §7.2): AUPRC as
``auc(recall, precision)`` of scikit-learn's ``precision_recall_curve``, AUROC, and what a
model-free score reaches on the same split."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from lsnf.errors import UserError


def _both_classes(is_anomaly: Tensor) -> Any:
    labels = is_anomaly.cpu().numpy()
    if labels.min() == labels.max():
        raise UserError("AUPRC/AUROC need both normal and anomalous examples in the test split")
    return labels


def auprc(scores: Tensor, is_anomaly: Tensor) -> float:
    """Area under the precision-recall curve, anomalies as positives (docs/method.md §7.2)."""
    from sklearn.metrics import auc, precision_recall_curve

    labels = _both_classes(is_anomaly)
    precision, recall, _ = precision_recall_curve(labels, scores.cpu().double().numpy())
    return float(auc(recall, precision))


def auroc(scores: Tensor, is_anomaly: Tensor) -> float:
    """Area under the ROC curve, anomalies as positives (scikit-learn's ``roc_auc_score``)."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(_both_classes(is_anomaly), scores.cpu().double().numpy()))


def reference_scores(images_u8: Tensor, is_anomaly: Tensor) -> dict[str, dict[str, float]]:
    """What a model-free score reaches on the same test split (docs/method.md §7.2): a random
    score (its expected AUPRC is the anomaly share, its AUROC 0.5) and the total ink of an
    image with either sign ("less ink = anomalous" and "more ink = anomalous")."""
    ink = images_u8.flatten(1).double().sum(1)  # (N,)
    share = float(is_anomaly.double().mean())
    return {
        "random": {"auprc": share, "auroc": 0.5},
        "less_ink": {"auprc": auprc(-ink, is_anomaly), "auroc": auroc(-ink, is_anomaly)},
        "more_ink": {"auprc": auprc(ink, is_anomaly), "auroc": auroc(ink, is_anomaly)},
    }
