"""Alerts: Pantau raises them, Prometheus Alertmanager delivers them (DESIGN.md, Alerts).

- `alerts.rules`, `alerts.rules_yaml`: the rules file (``alerts/data/blitar.rules.yaml``);
- `alerts.compile`, `alerts.compile_slots`: rules against the chain's series table -> checks
  with per-slot arrays (slots selected by array operations; alert ids as 64-bit numbers);
- `alerts.machine`: the vectorised state machine (pending, firing, ``for``,
  ``keep_firing_for``, hysteresis) of one check;
- `alerts.evaluate`: the `Evaluator`, a stored-batch and device-status listener;
- `alerts.lifecycle`, `alerts.store`: alerts, acknowledgements, tiers and their history in
  SQLite;
- `alerts.annotate`: what people read, in Bahasa Indonesia and English;
- `alerts.alertmanager`, `alerts.delivery`: Alertmanager's API v2 spoken as Prometheus does,
  silences for acknowledgements, escalation;
- `alerts.links`, `alerts.api`: signed one-click acknowledgement links and the HTTP API;
- `alerts.amconfig`: the Alertmanager configuration generated for a registry.
"""
