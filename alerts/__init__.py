"""Alerts: rules evaluated over each batch, the alert lifecycle, notifiers (see DESIGN.md).

Not built yet: this package is reserved by the design's fixed layout.
"""
