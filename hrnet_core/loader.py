"""``load_config`` / ``dump_config``: the edge where YAML files, YAML text and dicts become
``HRNetConfig``. The two formats (official experiment YAML, concise schema) are told apart by the
official upper-case ``MODEL`` section."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import yaml

from .concise_yaml import dump_concise, parse_concise
from .config import ConfigError, HRNetConfig
from .official_yaml import is_official, parse_official


def parse_mapping(data: Mapping, name: str = "hrnet") -> HRNetConfig:
    """An ``HRNetConfig`` from a parsed mapping in either format. Raises ``ConfigError``."""
    if not isinstance(data, Mapping):
        raise ConfigError("", f"a config must be a YAML mapping, got {type(data).__name__}")
    return parse_official(data, name) if is_official(data) else parse_concise(data, name)


def load_config_text(text: str, source: str = "<text>", name: str = "hrnet") -> HRNetConfig:
    """An ``HRNetConfig`` from YAML text (either format). ``source`` names it in errors."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(source, f"invalid YAML{where}: {problem}") from None
    if data is None:
        raise ConfigError(source, "is empty")
    return parse_mapping(data, name)


def load_config(source: str | Path | Mapping | HRNetConfig) -> HRNetConfig:
    """An ``HRNetConfig`` from a YAML file path, a mapping, or an ``HRNetConfig`` (returned as is).

    Raises ``ConfigError`` naming the file (missing, unreadable, not YAML) or the field.
    """
    if isinstance(source, HRNetConfig):
        return source
    if isinstance(source, Mapping):
        return parse_mapping(source)
    path = Path(source)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(path), "no such config file") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError, OSError) as err:
        raise ConfigError(str(path), f"cannot read config: {err.__class__.__name__}") from None
    try:
        return load_config_text(text, source=str(path), name=path.stem)
    except ConfigError as err:
        if err.field == str(path):
            raise
        # Name the file in every error, also those about the whole document (no field).
        raise ConfigError(f"{path}: {err.field}" if err.field else str(path), err.message) from None


def dump_config(cfg: HRNetConfig) -> str:
    """``cfg`` in the project's concise YAML schema."""
    return dump_concise(cfg)
