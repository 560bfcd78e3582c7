"""``load_config`` / ``dump_config``: the edge where YAML files, YAML text and dicts become
``HRNetConfig``. The two formats (official experiment YAML, concise schema) are told apart by the
official upper-case ``MODEL`` section. A ``.py`` path is an mmpose config: read without executing it
(``hrnet_core.mmpose_config``) and turned into a typed config by ``hrnet_core.mmpose_model``."""

from __future__ import annotations

import functools
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
    if is_official(data):
        return parse_official(data, name)
    arch = data.get("arch", "hrnet")
    if arch != "hrnet":
        from .networks import load_builtin
        from .networks.concise import parse_network_concise

        load_builtin()
        return parse_network_concise(data, name)
    return parse_concise({k: v for k, v in data.items() if k != "arch"}, name)


def load_config_text(text: str, source: str = "<text>", name: str = "hrnet") -> HRNetConfig:
    """An ``HRNetConfig`` from YAML text (either format), read by the bounded loader
    (``hrnet_core.safe_yaml``). ``source`` names it in errors."""
    data = load_yaml(text, source)
    if data is None:
        raise ConfigError(source, "is empty")
    return parse_mapping(data, name)


def load_config(source: str | Path | Mapping | HRNetConfig) -> HRNetConfig:
    """An ``HRNetConfig`` from a YAML file path, a mapping, or an ``HRNetConfig`` (returned as is). A path ending
    in ``.py`` is an mmpose config (``HRNetConfig`` for mmpose's HRNet, a ``NetworkConfig`` for another network).

    Raises ``ConfigError`` naming the file (missing, unreadable, not YAML, refused Python) or the field.
    """
    if isinstance(source, HRNetConfig) or _is_network_config(source):
        return source
    if isinstance(source, Mapping):
        return parse_mapping(source)
    path = Path(source)
    try:
        # A file name may hold bytes that are not UTF-8 (surrogate escapes): they never reach a name.
        name = path.stem.encode("utf-8", "backslashreplace").decode("utf-8")
        if path.suffix == ".py":  # an mmpose config, read without executing it
            return _load_mmpose(path, name)
        data = read_yaml_file(path, "config")
        return parse_mapping(data, name)
    except ConfigError as err:
        if err.field == str(path) or err.field.startswith(f"{path} line "):
            raise
        # Name the file in every error, also those about the whole document (no field).
        raise ConfigError(f"{path}: {err.field}" if err.field else str(path), err.message) from None


def _load_mmpose(path: Path, name: str):
    """An mmpose ``.py`` config (``hrnet_core.mmpose_config``, ``hrnet_core.mmpose_model``): its ``model``, with
    ``codec`` (1.x) or ``data_cfg`` (0.x) for the input size. Errors of the reader already name the file and line."""
    from .mmpose_config import read_mmpose_file
    from .mmpose_model import config_from_mmpose

    data = read_mmpose_file(path)
    if "model" not in data:
        raise ConfigError(str(path), "has no top-level model = dict(...): not an mmpose model config")
    return config_from_mmpose(data["model"], codec=data.get("codec"), data_cfg=data.get("data_cfg"), name=name)


def _is_network_config(obj) -> bool:
    from .networks.model_config import NetworkConfig

    return isinstance(obj, NetworkConfig)


def dump_config(cfg: HRNetConfig) -> str:
    """``cfg`` in the project's concise YAML schema (``arch:`` and the backbone dict for other networks).

    Remembered for the last 256 configs: an app edit asks for the text of the same config about ten times (its
    hash, the YAML view, the diff, the URL). Keyed by the config and its ``repr`` too: equal configs can still
    dump differently (a knob given as ``0`` or ``0.0`` compares equal), and each keeps its own text."""
    try:
        hash(cfg)
    except TypeError:  # a config holding an unhashable value: dumped each time
        return _dump(cfg)
    return _dump_remembered(cfg, repr(cfg))


@functools.lru_cache(maxsize=256)
def _dump_remembered(cfg, _spelling: str) -> str:
    return _dump(cfg)


def _dump(cfg) -> str:
    if _is_network_config(cfg):
        from .networks.concise import dump_network_concise

        return dump_network_concise(cfg)
    return dump_concise(cfg)
