"""Simulated API-gateway traffic: the test bed of the detector.

``traffic`` generates records as numpy columns (pure, seeded), ``encode`` turns
them into log lines of a gateway format (pure), ``cli`` writes them to a file,
stdout or Kafka (the ``statuswatch simulate`` verb).
"""

from statuswatch.simulate.encode import FORMATS, encode
from statuswatch.simulate.fleet import FLEET, diurnal_factor, trough_for
from statuswatch.simulate.incidents import INCIDENT_KINDS, Incident, Surge
from statuswatch.simulate.spec import SimSpec, labels
from statuswatch.simulate.traffic import Chunk, generate

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
