"""Simulated API-gateway traffic: the test bed of the detector.

``fleet`` (services, routes, the daily profile), ``incidents`` and ``spec`` (what to
simulate, ``SimSpec``) describe the traffic; ``traffic`` generates its records as numpy
columns (pure, seeded), ``encode`` turns them into log lines of a gateway format (pure);
``cli`` (the ``statuswatch simulate`` verb) plans a run and ``output`` writes it to a
file, stdout or Kafka.
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
