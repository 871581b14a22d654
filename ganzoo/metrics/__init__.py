"""Metrics: the suites a model declares (`suite.py`, registered in `ganzoo.registry.SUITES`), the judge
classifier, and the command-level `ganzoo eval` (`evaluate.py`)."""
