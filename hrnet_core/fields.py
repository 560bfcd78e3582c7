"""Small readers for YAML mappings that raise ``ConfigError`` naming the field path."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .config import ConfigError

_MISSING = object()


def section(mapping: Mapping, key: str, path: str, required: bool = False) -> Mapping:
    value = mapping.get(key, _MISSING)
    if value is _MISSING or value is None:
        if required:
            raise ConfigError(path, "is missing")
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(path, f"must be a mapping, got {type(value).__name__}")
    return value


def integer(mapping: Mapping, key: str, path: str, default: Any = _MISSING) -> int:
    value = mapping.get(key, default)
    if value is _MISSING:
        raise ConfigError(path, "is missing")
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(path, f"must be a positive integer, got {value!r}")
    if value <= 0:
        raise ConfigError(path, f"must be a positive integer, got {value}")
    return value


def int_list(value: Any, path: str) -> tuple[int, ...]:
    if not isinstance(value, (list, tuple)) or not value:
        raise ConfigError(path, f"must be a non-empty list of positive integers, got {value!r}")
    out = []
    for i, v in enumerate(value):
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise ConfigError(f"{path}[{i}]", f"must be a positive integer, got {v!r}")
        out.append(v)
    return tuple(out)


def boolean(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(path, f"must be true or false, got {value!r}")
    return value


def hw_pair(value: Any, path: str, order: str) -> tuple[int, int]:
    """A ``[H, W]`` (``order='hw'``) or official ``[W, H]`` (``order='wh'``) pair as ``(H, W)``."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value, value]
    pair = int_list(value, path)
    if len(pair) != 2:
        raise ConfigError(path, f"must have two entries, got {len(pair)}")
    return pair if order == "hw" else (pair[1], pair[0])
