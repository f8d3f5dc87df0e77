"""Pytest plugins loaded with ``-p`` before conftest files and Django settings."""
