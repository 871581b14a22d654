"""Models: one file per model, each registering its class in `ganzoo.registry.MODELS`."""
