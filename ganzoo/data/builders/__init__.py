"""Dataset builders: every module here registers one or more in `ganzoo.registry.DATASETS`."""
