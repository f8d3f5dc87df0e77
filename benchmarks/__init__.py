"""Benchmarks: run as scripts (``.venv/bin/python benchmarks/relay_overhead.py``), not tests."""
