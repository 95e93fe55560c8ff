"""Settings: one tree, one loader (defaults < profile file < ``HARNESS_*`` environment < flags)."""

from harness.config._loader import available_profiles, load_settings, resolve_profile
from harness.config._settings import (
    LoadSettings,
    PhaseSettings,
    RedisSettings,
    Settings,
    TimeoutSettings,
    TopologySettings,
)

__all__ = [
    "LoadSettings",
    "PhaseSettings",
    "RedisSettings",
    "Settings",
    "TimeoutSettings",
    "TopologySettings",
    "available_profiles",
    "load_settings",
    "resolve_profile",
]
