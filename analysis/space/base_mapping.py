"""The base config of a design space as a concise mapping, and the dotted keys a space file samples in it.

A space samples keys of the base's *concise mapping* (``hrnet_core.concise_yaml.to_concise_dict`` for the classic
HRNet, ``hrnet_core.networks.concise.to_network_dict`` for Lite-HRNet / HRFormer): ``width``, ``head.outputs``,
``input_size``, ``backbone.extra.stem.stem_channels``; a number segment indexes a list (``stages.1.modules``,
``modules.0``). For another network a key of its backbone section may leave out ``backbone.`` (the form of
``cfg.spec.knobs``: ``extra.stages_spec.num_blocks``).

The explicit HRNet form spells each stage out, so the shorthand keys ``width``, ``modules``, ``blocks`` and
``block`` (``hrnet_core.concise_yaml``, module docstring) replace its ``stages`` list by the shorthand that builds
the same stages; a base whose stages the shorthand cannot describe (branch widths not ``width * 2**k``, blocks that
differ within a stage) is refused for those keys.

``sample_id`` is the stable identity of a sampled config: a hash of its canonical concise mapping.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

import hrnet_core as hc
from analysis.settings import PRESET_DIR, PROJECT_ROOT
from hrnet_core.concise_yaml import to_concise_dict
from hrnet_core.errors import quote
from hrnet_core.networks.concise import to_network_dict
from hrnet_core.networks.model_config import NetworkConfig

SHORTHAND_KEYS = ("width", "modules", "blocks", "block")
ID_HEX_DIGITS = 16  # 64 bits: a collision among a million samples has odds of about 3e-8


class KeyPathError(ValueError):
    """A dotted key that does not reach a value of the mapping (the message says which segment)."""


def resolve_base(value, folder: Path):
    """The base config (``HRNetConfig`` or ``NetworkConfig``) of a space file's ``base`` and a label for it.

    ``value``: a preset name (``pose_hrnet_w32_256x192``: ``configs/NAME.yaml``, then ``configs/networks/NAME.yaml``),
    a path (YAML in either format, or an mmpose ``.py`` config; relative to ``folder``, the space file's folder,
    else to the project root as in ``configs/...``), or an inline concise mapping (what ``space.yaml`` of a space
    folder holds). Raises ``ConfigError`` naming the file or field (``hrnet_core.load_config``) or, for a preset
    that does not exist, ``KeyPathError``."""
    if isinstance(value, Mapping):
        return hc.load_config(dict(value)), "inline config"
    if not isinstance(value, str) or not value:
        raise KeyPathError(f"must be a preset name, a config path or a config mapping, got {quote(value)}")
    if "/" not in value and "\\" not in value and Path(value).suffix not in (".yaml", ".yml", ".py"):
        for path in (PRESET_DIR / f"{value}.yaml", PRESET_DIR / "networks" / f"{value}.yaml"):
            if path.is_file():
                return hc.load_config(path), value
        raise KeyPathError(f"no preset {quote(value)} in configs/ or configs/networks/ (give a path to a config file)")
    path = Path(value)
    if not path.is_absolute():
        here = folder / path
        path = here if here.exists() or not (PROJECT_ROOT / path).exists() else PROJECT_ROOT / path
    return hc.load_config(path), value


def concise_mapping(cfg) -> dict:
    """``cfg`` as its explicit concise mapping (plain lists, ints, strings): ``hc.load_config`` of it is ``cfg``."""
    return to_network_dict(cfg) if isinstance(cfg, NetworkConfig) else to_concise_dict(cfg)


def shorthand_problem(cfg) -> str | None:
    """Why the HRNet shorthand (``width``, ``modules``, ``blocks``, ``block``) cannot build ``cfg``'s stages, or
    None when it can (or ``cfg`` is another network, which has no shorthand: then a message saying so)."""
    if isinstance(cfg, NetworkConfig):
        return f"the shorthand keys are the classic HRNet's; arch {cfg.arch} has none (sample its backbone keys)"
    width = cfg.stages[0].channels[0]
    for st in cfg.stages:
        if tuple(st.channels) != tuple(width * 2**k for k in range(len(st.channels))):
            return f"{st.name} has branch widths {list(st.channels)}, not {width} x 2**k"
        if len(set(st.blocks)) != 1:
            return f"{st.name} has blocks {list(st.blocks)}, not one count for every branch"
    if len({st.block for st in cfg.stages}) != 1:
        return f"the stages use different blocks ({', '.join(st.block for st in cfg.stages)})"
    return None


def shorthand_mapping(cfg) -> dict:
    """The concise mapping of the HRNet ``cfg`` with ``width``, ``modules``, ``blocks`` and ``block`` in place of the
    explicit ``stages`` list (the same config). Raises ``KeyPathError`` when the shorthand cannot describe it
    (``shorthand_problem``)."""
    problem = shorthand_problem(cfg)
    if problem:
        raise KeyPathError(problem)
    out = {k: v for k, v in concise_mapping(cfg).items() if k != "stages"}
    blocks = [st.blocks[0] for st in cfg.stages]
    out.update(width=cfg.stages[0].channels[0], modules=[st.modules for st in cfg.stages],
               blocks=blocks[0] if len(set(blocks)) == 1 else blocks, block=cfg.stages[0].block)
    return out


def split_key(key: str) -> tuple[str | int, ...]:
    """``"stages.1.modules"`` -> ``("stages", 1, "modules")``: a segment of digits is a list index."""
    return tuple(int(s) if s.isdigit() else s for s in key.split("."))


def field_path(path: tuple[str | int, ...]) -> str:
    """A key path as ``ConfigError`` fields name it: ``("stages", 1, "modules")`` -> ``stages[1].modules``."""
    out = ""
    for seg in path:
        out += f"[{seg}]" if isinstance(seg, int) else (f".{seg}" if out else seg)
    return out


def resolve_key(mapping: Mapping, key: str) -> tuple[str | int, ...]:
    """The path of the dotted ``key`` in ``mapping``: as written, or under ``backbone`` for a network's backbone key
    written without it (``extra.stem.stem_channels``). Raises ``KeyPathError`` when a segment before the last does
    not exist (the last may be new: the config parser then says whether the schema knows it)."""
    if not isinstance(key, str) or not key or any(not s for s in key.split(".")):
        raise KeyPathError(f"a key is a dotted path of names and list indices, got {quote(key)}")
    path = split_key(key)
    if path[0] not in mapping and isinstance(mapping.get("backbone"), Mapping) and path[0] in mapping["backbone"]:
        path = ("backbone", *path)
    node = mapping
    for i, seg in enumerate(path[:-1]):
        node = _child(node, seg, path[: i + 1])
    last = path[-1]
    if isinstance(node, list) and not (isinstance(last, int) and last < len(node)):
        raise KeyPathError(f"{field_path(path[:-1])} is a list of {len(node)}; {quote(last)} is not an index of it")
    if isinstance(node, Mapping) and isinstance(last, int):
        raise KeyPathError(f"{field_path(path[:-1])} is a mapping, not a list: {last} is not one of its keys")
    return path


def _child(node, seg, upto):
    if isinstance(node, Mapping) and not isinstance(seg, int):
        if seg not in node:
            where = field_path(upto[:-1]) or "the config"
            raise KeyPathError(f"{where} has no key {quote(seg)}; it has {', '.join(map(str, node)) or 'none'}")
        return node[seg]
    if isinstance(node, list) and isinstance(seg, int):
        if seg >= len(node):
            raise KeyPathError(f"{field_path(upto[:-1])} has {len(node)} entries; index {seg} is past its end")
        return node[seg]
    raise KeyPathError(f"{field_path(upto[:-1]) or 'the config'} is a {type(node).__name__}: "
                       f"{quote(seg)} does not reach into it")


def get_path(mapping, path: tuple[str | int, ...], default=None):
    """The value at ``path`` in ``mapping`` (``resolve_key``), or ``default`` when its last segment is absent."""
    node = mapping
    for seg in path[:-1]:
        node = node[seg]
    last = path[-1]
    if isinstance(node, list):
        return node[last]
    return node.get(last, default)


def set_path(mapping, path: tuple[str | int, ...], value) -> None:
    """Set ``path`` (``resolve_key``) in the plain mapping ``mapping`` to ``value``, in place."""
    node = mapping
    for seg in path[:-1]:
        node = node[seg]
    node[path[-1]] = value


def canonical_text(mapping: Mapping) -> str:
    """JSON of ``mapping`` with sorted keys and no spaces: equal configs, equal text."""
    return json.dumps(mapping, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def sample_id(cfg) -> tuple[str, dict]:
    """``(id, canonical mapping)`` of a parsed config: the canonical mapping is ``concise_mapping(cfg)`` without
    ``name`` and ``description``; the id its SHA-256 (``canonical_text``), first ``ID_HEX_DIGITS`` hex digits.
    Stable across runs and machines; two mappings that parse to the same model share it."""
    canon = {k: v for k, v in concise_mapping(cfg).items() if k not in ("name", "description")}
    return hashlib.sha256(canonical_text(canon).encode("ascii")).hexdigest()[:ID_HEX_DIGITS], canon


__all__ = ["ID_HEX_DIGITS", "SHORTHAND_KEYS", "KeyPathError", "canonical_text", "concise_mapping", "field_path",
           "get_path", "resolve_base", "resolve_key", "sample_id", "set_path", "shorthand_mapping",
           "shorthand_problem", "split_key"]
