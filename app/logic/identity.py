"""The model's identity (name, family, origin) follows the edit.

- ``text_identity``: the name a pasted or uploaded YAML gives its model: an uploaded file's own stem; an
  official experiment YAML pasted as text is named from its own content (``MODEL.NAME``, width, input size,
  e.g. ``seg_hrnet_w48_512x1024``); a project-schema text with a ``name`` keeps it.
- ``derived_name``: the name of a form edit of an origin config: the origin's name with the tokens it spells
  rewritten (``w32`` -> ``w48``, ``256x192`` -> ``384x288``) and every other change appended after ``+``
  (``pose_hrnet_w32_256x192+final_only``); the origin's own name when nothing differs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import PurePath

from app.logic.config_edit import is_mmpose_text
from app.logic.network_form import backbone_dict, knob_value
from app.logic.networks import is_network
from hrnet_core import HRNetConfig, named_fusion
from hrnet_core.config import MAX_NAME_CHARS
from hrnet_core.official_yaml import is_official
from hrnet_core.safe_yaml import load_yaml

_UNSAFE = re.compile(r"[^A-Za-z0-9_.+-]+")


@dataclass(frozen=True)
class TextIdentity:
    """What a YAML text says about the model's identity: ``name`` (``None``: the text names nothing),
    ``official`` (a file of another project: an official experiment YAML or an mmpose ``.py`` config, a new
    origin) and ``origin`` (where it came from, for the page)."""

    name: str | None
    official: bool
    origin: str


def safe_name(text: str, fallback: str = "hrnet") -> str:
    """``text`` as a file-name-safe model name (letters, digits, ``_ . + -``; at most 100 characters)."""
    name = _UNSAFE.sub("_", text).strip("._-+")[:100]
    return name or fallback


def official_name(cfg: HRNetConfig, model_name: str) -> str:
    """``{MODEL.NAME}_w{width}_{H}x{W}`` for a config read from an official experiment YAML."""
    h, w = cfg.input_hw
    return safe_name(f"{model_name}_w{cfg.stages[0].channels[0]}_{h}x{w}")


def text_identity(text: str, source: str, cfg: HRNetConfig, file_name: str | None = None) -> TextIdentity:
    """The identity of ``cfg``, parsed from ``text``: ``file_name`` (an upload's own name) wins; then an
    official file's content; then a project-schema ``name`` entry. ``name`` is ``None`` when the text
    names nothing (the caller keeps or derives one). An mmpose config's text is named after its network and
    input size (``mmpose_litehrnet_256x192``)."""
    if is_mmpose_text(text):
        if file_name:
            return TextIdentity(safe_name(PurePath(file_name).stem), True, f"uploaded file {file_name}")
        h, w = cfg.input_hw
        arch = cfg.arch if is_network(cfg) else f"hrnet_w{cfg.stages[0].channels[0]}"
        return TextIdentity(safe_name(f"mmpose_{arch}_{h}x{w}"), True, "pasted mmpose config")
    data = load_yaml(text, source)  # already parsed once by the caller: cannot fail here
    official = isinstance(data, dict) and is_official(data)
    if file_name:
        return TextIdentity(safe_name(PurePath(file_name).stem), official, f"uploaded file {file_name}")
    if official:
        model_name = data["MODEL"].get("NAME")
        return TextIdentity(official_name(cfg, str(model_name)), True, "pasted official YAML")
    if isinstance(data, dict) and isinstance(data.get("name"), str) and data["name"].strip():
        return TextIdentity(cfg.name, False, "YAML")
    return TextIdentity(None, False, "YAML")


def _swap_token(name: str, old: str, new: str) -> tuple[str, bool]:
    pattern = re.compile(rf"(?<![A-Za-z0-9]){re.escape(old)}(?![A-Za-z0-9])")
    if not pattern.search(name):
        return name, False
    return pattern.sub(new, name, count=1), True


def _size_token(name: str, old: tuple[int, int], new: tuple[int, int]) -> tuple[str, bool]:
    name, done = _swap_token(name, f"{old[0]}x{old[1]}", f"{new[0]}x{new[1]}")
    if not done and old[0] == old[1] and new[0] == new[1]:  # e.g. higherhrnet_w32_512
        name, done = _swap_token(name, str(old[0]), str(new[0]))
    return name, done


def _network_tokens(origin, cfg) -> list[str]:
    """What a form edit of a network model changed: each knob by the last part of its key (``num_channels``),
    ``backbone`` for an entry no knob names, ``out{K}`` / ``headless`` for the head."""
    a, b = backbone_dict(origin), backbone_dict(cfg)
    extra = []
    for knob in cfg.spec.knobs:
        if knob_value(a, knob.key) != knob_value(b, knob.key):
            extra.append(knob.key.rsplit(".", 1)[-1])
    if not extra and a != b:
        extra.append("backbone")
    if origin.head != cfg.head:
        extra.append("headless" if cfg.head is None else f"out{cfg.head.outputs}")
    return list(dict.fromkeys(extra))


def derived_name(origin: HRNetConfig, cfg: HRNetConfig) -> str:
    """The name of ``cfg``, a form edit of ``origin`` (see the module docstring); of another network's model
    (``NetworkConfig``), the input size token rewritten and the changed knobs appended
    (``litehrnet_18_256x192+num_channels``)."""
    if replace(cfg, name=origin.name) == origin:
        return origin.name
    if is_network(origin) or is_network(cfg):
        if not (is_network(origin) and is_network(cfg) and origin.arch == cfg.arch):
            return cfg.name  # another network altogether: not an edit of the origin
        name, extra = origin.name.split("+", 1)[0], _network_tokens(origin, cfg)
        if origin.input_hw != cfg.input_hw:
            name, done = _size_token(name, origin.input_hw, cfg.input_hw)
            if not done:
                extra.append("{}x{}".format(*cfg.input_hw))
        full = "+".join([name, *(extra or ["edit"])]) if extra or name == origin.name else name
        return full[:MAX_NAME_CHARS]
    name, extra = origin.name.split("+", 1)[0], []
    w0, w1 = origin.stages[0].channels[0], cfg.stages[0].channels[0]
    if w0 != w1:
        name, done = _swap_token(name, f"w{w0}", f"w{w1}")
        if not done:
            extra.append(f"w{w1}")
    if origin.input_hw != cfg.input_hw:
        name, done = _size_token(name, origin.input_hw, cfg.input_hw)
        if not done:
            extra.append("{}x{}".format(*cfg.input_hw))
    a, b = origin.stages, cfg.stages
    if [s.modules for s in a] != [s.modules for s in b]:
        extra.append("mod" + "-".join(str(s.modules) for s in b))
    if [s.blocks for s in a] != [s.blocks for s in b]:
        extra.append("blocks")
    if [s.block for s in a] != [s.block for s in b]:
        extra.append("units")
    rule = [tuple(w1 * 2**k for k in range(s.branches)) for s in b]
    if [s.channels for s in b] != rule and [s.channels for s in a] != [s.channels for s in b]:
        extra.append("channels")
    if origin.fusion_schedule != cfg.fusion_schedule:
        extra.append(named_fusion(cfg) or f"fuse{cfg.num_fusions}")
    if origin.head.kind != cfg.head.kind:
        extra.append(f"head_{cfg.head.kind}")
    if origin.head.outputs != cfg.head.outputs:
        extra.append(f"out{cfg.head.outputs}")
    elif origin.head.kind == cfg.head.kind and origin.head != cfg.head:
        extra.append("head")
    if origin.stem != cfg.stem:
        extra.append(f"stem{cfg.stem.channels}")
    if origin.stage1 != cfg.stage1:
        extra.append("stage1")
    if origin.upsample != cfg.upsample:
        extra.append(cfg.upsample.mode + ("_ac" if cfg.upsample.align_corners else ""))
    if not extra and name == origin.name:
        extra.append("edit")
    full = "+".join([name, *extra])
    return full if len(full) <= MAX_NAME_CHARS else full[:MAX_NAME_CHARS]
