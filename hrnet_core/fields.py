"""Small readers for YAML mappings that raise ``ConfigError`` naming the field path."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .config import ConfigError, positive_int
from .errors import quote

_MISSING = object()


def as_mapping(value: Any, path: str, required: bool = False) -> Mapping:
    """``value`` as a mapping (``None`` -> ``{}``, or "is missing" when ``required``)."""
    if value is _MISSING or value is None:
        if required:
            raise ConfigError(path, "is missing")
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(path, f"must be a mapping, got {type(value).__name__}")
    return value


def dict_of(value: Any, path: str) -> Mapping:
    """``value`` if it is a mapping (an mmpose ``dict(...)``), else ``ConfigError`` naming ``path``."""
    if not isinstance(value, Mapping):
        raise ConfigError(path, f"must be a dict(...), got {type(value).__name__}")
    return value


def check_keys(mapping: Mapping, allowed: set[str], path: str) -> None:
    """``ConfigError`` naming the first key of ``mapping`` (sorted) that is not in ``allowed``."""
    unknown = sorted(str(k) for k in mapping if k not in allowed)
    if unknown:
        raise ConfigError(f"{path}.{unknown[0]}", f"unknown key; allowed: {', '.join(sorted(allowed))}")


def section(mapping: Mapping, key: str, path: str, required: bool = False) -> Mapping:
    """The sub-mapping ``mapping[key]`` (see ``as_mapping``)."""
    return as_mapping(mapping.get(key, _MISSING), path, required)


def integer(mapping: Mapping, key: str, path: str, default: Any = _MISSING) -> int:
    """The positive integer ``mapping[key]`` (``default`` when absent; "is missing" without one)."""
    value = mapping.get(key, default)
    if value is _MISSING:
        raise ConfigError(path, "is missing")
    return positive_int(value, path)


def int_list(value: Any, path: str) -> tuple[int, ...]:
    """A non-empty list of positive integers as a tuple; errors name the entry (``path[i]``)."""
    if not isinstance(value, (list, tuple)) or not value:
        raise ConfigError(path, f"must be a non-empty list of positive integers, got {quote(value)}")
    return tuple(positive_int(v, f"{path}[{i}]") for i, v in enumerate(value))


def boolean(value: Any, path: str) -> bool:
    """``value`` if it is ``true`` or ``false``."""
    if not isinstance(value, bool):
        raise ConfigError(path, f"must be true or false, got {quote(value)}")
    return value


def bool_list(value: Any, path: str) -> tuple[bool, ...]:
    """A non-empty list of true/false as a tuple; also the tuple string the official files use for some lists
    (``(True, False)``, read by yacs as a Python literal)."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("(") and text.endswith(")"):
            words = [w.strip() for w in text[1:-1].split(",") if w.strip()]
            if words and all(w in ("True", "False") for w in words):
                value = [w == "True" for w in words]
    if not isinstance(value, (list, tuple)) or not value:
        raise ConfigError(path, f"must be a non-empty list of true/false, got {quote(value)}")
    return tuple(boolean(v, f"{path}[{i}]") for i, v in enumerate(value))


def hw_pair(value: Any, path: str, order: str) -> tuple[int, int]:
    """A ``[H, W]`` (``order='hw'``) or official ``[W, H]`` (``order='wh'``) pair as ``(H, W)``."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value, value]
    pair = int_list(value, path)
    if len(pair) != 2:
        raise ConfigError(path, f"must have two entries, got {len(pair)}")
    return pair if order == "hw" else (pair[1], pair[0])
