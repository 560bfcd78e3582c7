"""The Build page's form for a model of another registered network, generated from its ``NetworkSpec.knobs``:
one field per knob (a dotted key of the mmpose backbone dict), plus the input size and the head's outputs.

Every field is described the same way (``KnobField``), whatever the network: its widget follows the value the
backbone dict holds there — a whole number, a number, a flag, or text (a name, or a list written as one YAML
value such as ``[40, 80, 160]`` or ``[[40, 80], [40, 80, 160]]``).

``apply_form`` reads every field, as HRNet's form does: the values replace their entries of ``spec.dump(section)``
and the dict is parsed back with ``spec.parse``, so the network's own validation decides. Knobs that must agree
(HRFormer's stage widths: each stage's branch 0 continues the last) can thus be edited one field after the
other: the fields keep what was typed while the model is invalid, and the edit that makes it valid applies them
all. A refusal is a ``FieldError`` whose one line names the field just edited and the value typed there, then
the network's reason with the field it names when that is another one, e.g.
``backbone.extra.stem.stem_channels = 33: 33 must be even: ...``; its ``widget`` is that field's widget key.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, replace

import yaml

from hrnet_core import ConfigError
from hrnet_core.errors import quote
from hrnet_core.model import check_buildable
from hrnet_core.networks.model_config import NetworkConfig
from hrnet_core.safe_yaml import load_yaml

INPUT_H, INPUT_W, HEAD_OUTPUTS = "n_in_h", "n_in_w", "n_head_out"  # widget keys of the fields every network has
FIELD = "backbone"  # the concise YAML's section: field paths read backbone.extra.stem.stem_channels
_COMMON = {INPUT_H: "input_size.H", INPUT_W: "input_size.W", HEAD_OUTPUTS: "head.outputs"}


class FieldError(ConfigError):
    """An edit of the form refused: ``field`` is ``PATH = VALUE TYPED``, ``message`` the network's reason (with
    the sub-field it names, when that is deeper than the field); ``widget`` the field's widget key."""

    def __init__(self, field: str, message: str, widget: str | None = None):
        super().__init__(field, message)
        self.widget = widget


@dataclass(frozen=True)
class KnobField:
    """One form field of a knob: ``key`` (dotted, inside the backbone dict), ``path`` (what errors name:
    ``backbone.`` + key), ``widget`` (``int``, ``float``, ``bool`` or ``text``), ``value`` (the widget's value
    for the current config), ``help`` (the knob's own), ``widget_key`` (the Streamlit key), ``yaml`` (a text
    field holds one YAML value, e.g. a list; else a name taken as typed)."""

    key: str
    path: str
    widget: str
    value: object
    help: str
    widget_key: str
    yaml: bool = False


def backbone_dict(cfg: NetworkConfig) -> dict:
    """``cfg``'s backbone as its mmpose dict without ``type`` (what ``spec.parse`` reads)."""
    out = copy.deepcopy(cfg.spec.dump(cfg.backbone))
    out.pop("type", None)
    return out


def knob_value(mapping: dict, key: str):
    """The entry at dotted ``key`` of ``mapping``; ``KeyError`` when a knob names no entry (a network's bug)."""
    node = mapping
    for part in key.split("."):
        node = node[part]
    return node


def _set(mapping: dict, key: str, value) -> None:
    *parents, last = key.split(".")
    node = mapping
    for part in parents:
        node = node[part]
    node[last] = value


def widget_key(cfg: NetworkConfig, key: str) -> str:
    """The Streamlit key of knob ``key``'s field (per network: two networks may hold different kinds there)."""
    return f"n_{cfg.arch}_{key}"


def _widget(kind: str, value) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "float" if kind == "float" or isinstance(value, float) else "int"
    return "text"


def as_text(value) -> str:
    """A value as its text field shows it: a name as it is, anything else as one YAML flow value."""
    if isinstance(value, str):
        return value
    return yaml.safe_dump(value, default_flow_style=True, width=10**6).strip().removesuffix("...").strip()


def knob_fields(cfg: NetworkConfig) -> tuple[KnobField, ...]:
    """The form fields of ``cfg``'s network, one per knob, in the spec's order."""
    mapping = backbone_dict(cfg)
    out = []
    for knob in cfg.spec.knobs:
        value = knob_value(mapping, knob.key)
        widget = _widget(knob.kind, value)
        shown = as_text(value) if widget == "text" else float(value) if widget == "float" else value
        out.append(KnobField(knob.key, f"{FIELD}.{knob.key}", widget, shown, knob.help, widget_key(cfg, knob.key),
                             yaml=widget == "text" and not isinstance(value, str)))
    return tuple(out)


def widget_values(cfg: NetworkConfig) -> dict:
    """Widget key -> value for every field of ``cfg``'s form: the knobs, the input size and (with a head) its
    outputs."""
    values = {f.widget_key: f.value for f in knob_fields(cfg)}
    values[INPUT_H], values[INPUT_W] = cfg.input_hw
    if cfg.head is not None:
        values[HEAD_OUTPUTS] = cfg.head.outputs
    return values


def _typed(value) -> str:
    """The value typed, as an error line repeats it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return quote(value, 120)


def _refused(path: str, value, err: ConfigError, widget: str | None) -> FieldError:
    reason = err.message if err.field == path else str(err)
    return FieldError(f"{path} = {_typed(value)}", " ".join(reason.split()), widget)


def _parsed(field: KnobField, value):
    """A widget's value as the backbone dict holds it: a text field's YAML value (or its name), an integral
    float of a whole-number field as an int."""
    if field.widget == "text":
        return load_yaml(value, field.path) if field.yaml else value.strip()
    if field.widget == "int" and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def apply_form(cfg: NetworkConfig, values: Mapping, edited: str | None = None) -> NetworkConfig:
    """``cfg`` with every field of ``values`` (widget key -> value, as ``widget_values``; absent ones kept)
    applied: the knobs through ``spec.parse``, then the input size and head outputs, then the counts and the
    size bound (``hrnet_core.model.check_buildable``). ``edited``: the widget key just changed, which a refusal
    is reported beside. Raises ``FieldError`` (module docstring)."""
    fields = {f.widget_key: f for f in knob_fields(cfg)}
    common = {w: values.get(w, v) for w, v in widget_values(cfg).items() if w in _COMMON}
    common = {w: int(v) if isinstance(v, float) and v.is_integer() else v for w, v in common.items()}

    def refused(err: ConfigError, widget: str | None) -> FieldError:
        """Beside field ``widget``, with what was typed there; the network's reason keeps the field it names
        when that is another (HRFormer: the next stage's width, which no longer continues this one)."""
        if widget in fields:
            f = fields[widget]
            return _refused(f.path, values.get(widget, f.value), err, widget)
        if widget in common:
            return _refused(_COMMON[widget], common[widget], err, widget)
        return FieldError(err.field, err.message)

    mapping = backbone_dict(cfg)
    for w, f in fields.items():
        if w in values:
            try:
                _set(mapping, f.key, _parsed(f, values[w]))
            except ConfigError as err:  # not YAML (the reason names this field's path)
                raise refused(err, edited if edited is not None else w) from None
    try:
        out = replace(cfg, backbone=cfg.spec.parse(mapping, FIELD), input_hw=(common[INPUT_H], common[INPUT_W]))
        if cfg.head is not None:
            out = replace(out, head=replace(cfg.head, outputs=common[HEAD_OUTPUTS]))  # HeadConfig checks it
        check_buildable(out)  # the closed-form counts (which check the input size) and the parameter bound
    except ConfigError as err:
        raise refused(err, edited) from None
    return out


__all__ = ["FIELD", "FieldError", "HEAD_OUTPUTS", "INPUT_H", "INPUT_W", "KnobField", "apply_form", "as_text",
           "backbone_dict", "knob_fields", "knob_value", "widget_key", "widget_values"]
