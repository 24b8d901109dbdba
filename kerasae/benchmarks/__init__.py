"""Benchmarks run as modules, e.g. `python -m kerasae.benchmarks.export_latency`."""
