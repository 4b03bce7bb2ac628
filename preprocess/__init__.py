"""Training-set preparation: annotated traces -> masks -> square windows, and the recording simulator.

Modules: `annotations` (CSV / LabelMe reading and checks), `masks` (trace interpolation, trace -> mask),
`windows` (square windows along time), `build` (the whole `python -m preprocess build` run),
`simulate` (simulated recordings with exact truth). Nothing is imported here, so
`python -m preprocess --help` stays instant.
"""
