"""Configuration of a MASC node: TOML file -> validated, frozen pydantic models.

See docs/configuration.md for the file format and peers.example.toml for an example.
"""

from masc.config.durations import parse_duration
from masc.config.lint import ConfigWarning, config_warnings
from masc.config.loader import ConfigError, load_config, parse_config_text
from masc.config.models import (
    AllocationConfig,
    ControlConfig,
    GribConfig,
    GribFrrConfig,
    GribKernelConfig,
    LocalConfig,
    MaasConfig,
    MascConfig,
    MetricsConfig,
    PeerConfig,
    PolicyConfig,
    Relation,
    StorageConfig,
    TimersConfig,
)

__all__ = [
    "AllocationConfig",
    "ConfigError",
    "ConfigWarning",
    "ControlConfig",
    "GribConfig",
    "GribFrrConfig",
    "GribKernelConfig",
    "LocalConfig",
    "MaasConfig",
    "MascConfig",
    "MetricsConfig",
    "PeerConfig",
    "PolicyConfig",
    "Relation",
    "StorageConfig",
    "TimersConfig",
    "config_warnings",
    "load_config",
    "parse_config_text",
    "parse_duration",
]
