"""Shared pieces of Heart-Segmentation: reading recordings, the dataset, metrics,
whole-recording inference, cardiac measurements, plots and checkpoints."""
