"""ganzoo's Hydra configs, shipped as the package `ganzoo.conf` (Hydra needs this file to read them
via pkg://). Importing it registers the dataclass schemas they refer to."""

from ganzoo.config import register as _register

_register()
