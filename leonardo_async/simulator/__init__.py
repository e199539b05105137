"""A local stand-in for Leonardo.AI's image-to-video API, its upload storage and its CDN.

A real aiohttp server on loopback that speaks Leonardo's wire format, enforces its rules and
limits, and misbehaves on demand, so the client can be tested, benchmarked and demonstrated
without credits or network. It imports nothing else from :mod:`leonardo_async`: it is an
independent reading of the wire format, so a client bug shows up as the real API would
report it.
"""

from __future__ import annotations

from ._config import FaultConfig, JobDurations, SimulatorConfig, config_from_mapping
from ._server import Simulator, serve
from ._state import GenerationRecord
from ._stats import SimulatorStats

__all__ = [
    "FaultConfig",
    "GenerationRecord",
    "JobDurations",
    "Simulator",
    "SimulatorConfig",
    "SimulatorStats",
    "config_from_mapping",
    "serve",
]
