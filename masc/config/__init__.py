"""Configuration of a MASC node: TOML file -> validated, frozen pydantic models.

See docs/configuration.md for the file format and peers.example.toml for an example.
"""

from masc.config.durations import parse_duration
from masc.config.loader import ConfigError, load_config, parse_config_text
from masc.config.models import (
    AllocationConfig,
    ControlConfig,
    LocalConfig,
    MaasConfig,
    MascConfig,
    PeerConfig,
    Relation,
    StorageConfig,
    TimersConfig,
)

__all__ = [
    "AllocationConfig",
    "ConfigError",
    "ControlConfig",
    "LocalConfig",
    "MaasConfig",
    "MascConfig",
    "PeerConfig",
    "Relation",
    "StorageConfig",
    "TimersConfig",
    "load_config",
    "parse_config_text",
    "parse_duration",
]
