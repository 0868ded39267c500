"""Detection quality on simulated incidents, against reference detectors."""
