"""Metrics of PAPER.md §5: reconstruction, anomaly AUPRC, FID, image grids."""
