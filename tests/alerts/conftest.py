"""The end-to-end fixtures (Pantau wired to the session's Mosquitto and InfluxDB) for the
alert tests that run `pantau run` itself."""

from tests.e2e.conftest import pantau_env, pantau_process

__all__ = ["pantau_env", "pantau_process"]
