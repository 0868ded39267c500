"""statuswatch's volume model on the Numenta Anomaly Benchmark's count series."""
