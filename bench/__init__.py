"""Benchmarks of synth, tests, the service and its container, each beside a baseline (`python -m bench`)."""
