"""Datasets: the data contract (base.py), the batch loader (loader.py), and three sub-packages:
builders/ (every module there registers a builder in `ganzoo.registry.DATASETS`, which imports all of
them on first lookup), fetch/ (manifest, verified downloads, safe extraction) and files/ (image file
checks, the bad-image policy, `ganzoo data verify`).
"""
