"""Grafana: dashboards generated from the registry, provisioning and push (see DESIGN.md).

Not built yet: this package is reserved by the design's fixed layout.
"""
