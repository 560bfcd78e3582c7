"""``load_config`` / ``dump_config``: the edge where YAML files, YAML text and dicts become
``HRNetConfig``. The two formats (official experiment YAML, concise schema) are told apart by the
official upper-case ``MODEL`` section."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from .concise_yaml import dump_concise, parse_concise
from .config import ConfigError, HRNetConfig
from .official_yaml import is_official, parse_official
from .safe_yaml import check_data, load_yaml, read_yaml_file


def parse_mapping(data: Mapping, name: str = "hrnet") -> HRNetConfig:
    """An ``HRNetConfig`` from a parsed mapping in either format. Raises ``ConfigError``.

    The mapping is held to the YAML loader's limits first (``hrnet_core.safe_yaml.check_data``).
    """
    if not isinstance(data, Mapping):
        raise ConfigError("", f"a config must be a YAML mapping, got {type(data).__name__}")
    check_data(data)
    return parse_official(data, name) if is_official(data) else parse_concise(data, name)


def load_config_text(text: str, source: str = "<text>", name: str = "hrnet") -> HRNetConfig:
    """An ``HRNetConfig`` from YAML text (either format), read by the bounded loader
    (``hrnet_core.safe_yaml``). ``source`` names it in errors."""
    data = load_yaml(text, source)
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
        data = read_yaml_file(path, "config")
        # A file name may hold bytes that are not UTF-8 (surrogate escapes): they never reach a name.
        name = path.stem.encode("utf-8", "backslashreplace").decode("utf-8")
        return parse_mapping(data, name)
    except ConfigError as err:
        if err.field == str(path):
            raise
        # Name the file in every error, also those about the whole document (no field).
        raise ConfigError(f"{path}: {err.field}" if err.field else str(path), err.message) from None


def dump_config(cfg: HRNetConfig) -> str:
    """``cfg`` in the project's concise YAML schema."""
    return dump_concise(cfg)
