"""Devices: the registry (what exists, where, how to calibrate, what is normal) and its
series table."""
