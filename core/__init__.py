"""The kernel: the few types every layer of Pantau speaks.

- `core.batch`: `TelemetryBatch` (the struct of arrays that flows) and its quality flags;
- `core.reasons`: `Reason`, why a message or reading was not stored;
- `core.errors`: `PantauError`, the root of every error raised on purpose;
- `core.metrics`: `Metrics`, the in-process registry behind ``/metrics``;
- `core.settings`: `Secret`, `SettingsError` and `setting`, for each package's settings section;
- `core.state`: `State`, the arrays a stateful component snapshots.

Numpy and the standard library only: nothing here imports another Pantau package.
"""
