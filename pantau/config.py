"""Loading `pantau.settings.Settings`: a TOML file, then ``PANTAU_<SECTION>_<FIELD>``
environment variables (``PANTAU_<FIELD>`` for top-level fields), a secret from the file named
by ``<VARIABLE>_FILE``; and `reference`, the Markdown table of every setting that
``pantau settings`` prints and docs/settings.md holds.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from core.settings import Secret, SettingsError
from pantau.settings import Settings


def _is_section(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp) and tp is not Secret


def _convert(value: Any, tp: Any, where: str) -> Any:
    if tp is Secret:
        if isinstance(value, Secret):
            return value
        if not isinstance(value, str):
            raise SettingsError(f"{where}: expected a string")
        return Secret(value)
    origin = typing.get_origin(tp)
    if origin is tuple:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        item = typing.get_args(tp)[0]
        if not isinstance(value, list | tuple):
            raise SettingsError(f"{where}: expected a list of {item.__name__}")
        return tuple(_convert(v, item, where) for v in value)
    if tp is bool:
        if isinstance(value, str):
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
        if isinstance(value, bool):
            return value
        raise SettingsError(f"{where}: expected true or false, not {value!r}")
    if tp in (int, float):
        if isinstance(value, bool):
            raise SettingsError(f"{where}: expected a number, not {value!r}")
        try:
            return tp(value)
        except (TypeError, ValueError) as e:
            raise SettingsError(f"{where}: expected {tp.__name__}, not {value!r}") from e
    if tp is str:
        if not isinstance(value, str):
            raise SettingsError(f"{where}: expected a string, not {value!r}")
        return value
    raise SettingsError(f"{where}: unsupported setting type {tp!r}")


def _secret_file(path: str, where: str) -> Secret:
    """A secret read from a file (Docker/Kubernetes secrets), trailing newline stripped."""
    try:
        with open(path, encoding="utf-8") as fh:
            return Secret(fh.read().strip())
    except OSError as e:
        raise SettingsError(f"environment {where}: cannot read {path}: {e.strerror}") from e


def _build(cls: type[Any], values: Mapping[str, Any], env: Mapping[str, str], prefix: str,
           where: str) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - known
    if unknown:
        raise SettingsError(f"{where}: unknown setting(s) {', '.join(sorted(unknown))}")
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if _is_section(tp):
            sub = values.get(f.name, {})
            if not isinstance(sub, Mapping):
                raise SettingsError(f"{where}[{f.name}]: expected a table")
            kwargs[f.name] = _build(tp, sub, env, f"{prefix}{f.name.upper()}_", f"[{f.name}]")
            continue
        env_name = f"{prefix}{f.name.upper()}"
        if tp is Secret and f"{env_name}_FILE" in env:
            kwargs[f.name] = _secret_file(env[f"{env_name}_FILE"], f"{env_name}_FILE")
        elif env_name in env:
            kwargs[f.name] = _convert(env[env_name], tp, f"environment {env_name}")
        elif f.name in values:
            kwargs[f.name] = _convert(values[f.name], tp, f"{where} {f.name}")
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise SettingsError(f"{where}: {e}") from e


def load_settings(path: str | Path | None = None,
                  env: Mapping[str, str] | None = None) -> Settings:
    """Settings from a TOML file (optional) overridden by ``PANTAU_*`` environment variables."""
    values: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as fh:
                values = tomllib.load(fh)
        except OSError as e:
            raise SettingsError(f"{path}: cannot read settings: {e.strerror}") from e
        except tomllib.TOMLDecodeError as e:
            raise SettingsError(f"{path}: not valid TOML: {e}") from e
    settings: Settings = _build(Settings, values, os.environ if env is None else env,
                                "PANTAU_", str(path or "settings"))
    return settings


def reference() -> str:
    """Markdown reference of every setting, its environment variable, default and meaning."""
    lines = ["| setting | environment | default | meaning |", "|---|---|---|---|"]

    def walk(cls: type[Any], section: str) -> None:
        hints = typing.get_type_hints(cls)
        inst = cls()
        for f in dataclasses.fields(cls):
            tp = hints[f.name]
            if _is_section(tp):
                walk(tp, f.name)
                continue
            name = f"{section}.{f.name}" if section else f.name
            env = "PANTAU_" + (f"{section}_" if section else "").upper() + f.name.upper()
            default = getattr(inst, f.name)
            shown = ('""' if isinstance(default, Secret) else
                     (", ".join(map(str, default)) or "[]") if isinstance(default, tuple) else
                     repr(default))
            lines.append(f"| `{name}` | `{env}` | `{shown}` | {f.metadata.get('doc', '')} |")

    walk(Settings, "")
    return "\n".join(lines) + "\n"
