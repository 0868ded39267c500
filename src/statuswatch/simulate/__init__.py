"""Simulated API-gateway traffic: the test bed of the detector.

``traffic`` generates records as numpy columns (pure, seeded), ``encode`` turns
them into log lines of a gateway format (pure), ``cli`` writes them to a file,
stdout or Kafka (the ``statuswatch simulate`` verb).
"""

from statuswatch.simulate.encode import FORMATS, encode
from statuswatch.simulate.traffic import (
    FLEET,
    INCIDENT_KINDS,
    Chunk,
    Incident,
    SimSpec,
    Surge,
    diurnal_factor,
    generate,
    labels,
    trough_for,
)

__all__ = [
    "FLEET",
    "FORMATS",
    "INCIDENT_KINDS",
    "Chunk",
    "Incident",
    "SimSpec",
    "Surge",
    "diurnal_factor",
    "encode",
    "generate",
    "labels",
    "trough_for",
]
