"""Ingest: MQTT in, decoded into `TelemetryBatch`es, written to InfluxDB, acknowledged after
the write.

Data flows one way: ``MqttSource`` -> decoders -> ``Batcher`` -> processors -> ``InfluxSink`` /
``DeadLetter`` -> acknowledgement back to the broker.
"""
