"""Pantau: the composition root (settings, CLI, wiring, HTTP API) of the sensor command center."""

__version__ = "0.1.0"
