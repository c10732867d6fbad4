"""Metrics of docs/method.md §7: reconstruction, anomaly AUPRC, FID, hole metrics, grids."""
