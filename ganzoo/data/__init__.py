"""Datasets: built-in procedural sets, torchvision sets, image folders; and the batch loader.

Every module here that defines a builder registers it in `ganzoo.registry.DATASETS`; the registry
imports all modules of this package on first lookup.
"""
