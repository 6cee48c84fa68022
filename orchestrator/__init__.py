"""orch: fleet-wide remote diagnostics for balena IoT fleets."""

__version__ = "0.1.0"
"""The release (pyproject.toml reads it from here); every run records it."""
