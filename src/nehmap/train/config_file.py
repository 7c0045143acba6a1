"""Training configuration files: :class:`ConfigError`, reading TOML or YAML, writing TOML.

:func:`read_config_file` turns a ``.toml``, ``.yaml`` or ``.yml`` file into a dict of
settings (dashes in keys become underscores; relative ``data`` and ``out`` paths are
taken relative to the file's folder). :func:`dumps_toml` writes the flat settings with
one level of sub-tables (``[augmentation]``, ``[model_kwargs]``) back as TOML.
"""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

from nehmap.errors import NehmapInputError

__all__ = ["ConfigError", "dumps_toml", "fail", "normalise_keys", "read_config_file"]


class ConfigError(NehmapInputError):
    """An invalid training setting or configuration file."""


def fail(problem: str, hint: str = "", path: str | Path | None = None) -> NoReturn:
    """Raise :class:`ConfigError` for the file ``path`` (None: settings given in code)."""
    raise ConfigError(path, problem, hint)


def normalise_keys(values: Mapping[str, Any], source: str | Path | None) -> dict[str, Any]:
    """``values`` with dashes in its keys replaced by underscores; refuses a non-table."""
    if not isinstance(values, Mapping):
        fail("a configuration must be a table of settings.", path=source)
    return {str(k).replace("-", "_"): v for k, v in values.items()}


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The settings of a TOML or YAML file as a dict (keys normalised to underscores).

    Relative ``data`` and ``out`` paths are made relative to the file's folder.

    Raises
    ------
    ConfigError
        If the file is missing, unreadable, of an unknown type or not a table.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(p, "configuration file not found.", "Check the path.")
    suffix = p.suffix.lower()
    try:
        text = p.read_text(encoding="utf-8")
        if suffix == ".toml":
            values: Any = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            import yaml

            values = yaml.safe_load(text) or {}
        else:
            raise ConfigError(p, "unknown configuration file type.", "Use .toml, .yaml or .yml.")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(p, f"cannot be read ({exc}).") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(p, f"is not valid TOML ({exc}).", "Fix the file.") from None
    except Exception as exc:  # yaml.YAMLError without importing yaml at module level
        if type(exc).__module__.startswith("yaml"):
            raise ConfigError(p, f"is not valid YAML ({exc}).", "Fix the file.") from None
        raise
    values = normalise_keys(values, p)
    for key in ("data", "out"):
        if isinstance(values.get(key), str) and values[key]:
            q = Path(values[key]).expanduser()
            values[key] = str(q if q.is_absolute() else (p.parent / q))
    return values


# ---------------------------------------------------------------------------- TOML writer


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"cannot write {value} in TOML.")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value if v is not None) + "]"
    if isinstance(value, Mapping):
        items = [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items() if v is not None]
        return "{ " + ", ".join(items) + " }" if items else "{}"
    raise TypeError(f"cannot write a {type(value).__name__} in TOML.")


def _toml_key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else json.dumps(key)


def dumps_toml(values: Mapping[str, Any]) -> str:
    """A flat mapping with one level of sub-tables as TOML text (None values left out;
    ``preset = None`` is written as ``"none"``)."""
    lines: list[str] = []
    tables: list[tuple[str, Mapping[str, Any]]] = []
    for key, value in values.items():
        if key == "preset" and value is None:
            value = "none"
        if value is None:
            continue
        if isinstance(value, Mapping):
            tables.append((key, value))
        else:
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
    for key, table in tables:
        lines.append("")
        lines.append(f"[{_toml_key(key)}]")
        lines.extend(
            f"{_toml_key(k)} = {_toml_value(v)}" for k, v in table.items() if v is not None
        )
    return "\n".join(lines) + "\n"
