"""The logic behind the app's Build page, free of Streamlit so it can be tested and timed.

- ``list_presets`` / ``list_network_presets`` / ``all_presets`` / ``list_saved``: the model zoo in ``configs/``
  (classic HRNet), in ``configs/networks/`` (Lite-HRNet, HRFormer ...) and the user's saved configs;
- ``parse_yaml``: YAML of any schema (project, official experiment, a network's ``arch:`` YAML) or an mmpose
  ``.py`` config's text (read without executing it) as a config;
- ``form_values`` / ``config_from_form``: an ``HRNetConfig`` as the flat values of the page's form
  controls and back (every error a ``ConfigError`` naming the field);
- ``yaml_diff``: unified diff of two configs in the explicit concise schema;
- ``save_config``: write a config's YAML to the user's folder atomically, never overwriting a preset
  and never losing an earlier saved config;
- ``config_hash``: the key the UI caches models, analyses and diagrams by.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from analysis.settings import PRESET_DIR, user_config_dir
from app.logic import networks
from hrnet_core import (
    MAX_PARAMS,
    ConfigError,
    HRNetConfig,
    UserInputError,
    dump_config,
    load_config,
    load_config_text,
    named_fusion,
)
from hrnet_core.config import BLOCK_EXPANSION, HIGHER_FIELDS, HeadConfig
from hrnet_core.heads import head_kinds
from hrnet_core.mmpose_config import read_mmpose_text
from hrnet_core.mmpose_model import config_from_mmpose
from hrnet_core.model import check_buildable

DEFAULT_PRESET = "pose_hrnet_w32_256x192"
NETWORK_PRESET_DIR = PRESET_DIR / "networks"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,99}$")  # "+": derived names (app.logic.identity)


def list_presets(folder: Path = PRESET_DIR) -> dict[str, Path]:
    """Preset name (file stem) -> path, sorted by name, for every ``*.yaml`` in ``folder`` (the classic HRNet's
    zoo by default; ``list_network_presets`` has the other networks')."""
    return {p.stem: p for p in sorted(Path(folder).glob("*.yaml"))}


def list_network_presets(folder: Path = NETWORK_PRESET_DIR) -> dict[str, Path]:
    """Preset name -> path of the other registered networks' presets (``configs/networks/*.yaml``)."""
    return list_presets(folder)


def all_presets() -> dict[str, Path]:
    """Every preset the picker lists: the classic HRNet's, then the other networks' (a network preset whose stem
    an HRNet preset already has is listed as ``networks/STEM``)."""
    out = dict(list_presets())
    for name, path in list_network_presets().items():
        out[name if name not in out else f"networks/{name}"] = path
    return out


def list_saved(folder: Path | None = None) -> dict[str, Path]:
    """Saved config name -> path in the user's folder (empty when it does not exist yet)."""
    folder = user_config_dir() if folder is None else Path(folder)
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))} if folder.is_dir() else {}


def load_preset(name: str, folder: Path | None = None) -> HRNetConfig:
    """The preset ``name`` of ``folder`` (default: every preset, ``all_presets``). Raises ``ConfigError``."""
    presets = all_presets() if folder is None else list_presets(folder)
    if name not in presets:
        raise ConfigError("preset", f"unknown preset {name!r}")
    return load_config(presets[name])


def config_hash(cfg: HRNetConfig) -> str:
    """A stable 16-hex-digit key of everything that defines ``cfg`` (its explicit YAML)."""
    return hashlib.sha256(dump_config(cfg).encode()).hexdigest()[:16]


# ---- form values <-> config ---------------------------------------------------------------------
# The form is a flat mapping so each entry can be one widget's value:
#   width, input_h, input_w, head_kind, head_outputs,
#   modules: [per stage], blocks: [[per branch] per stage], channels: [[per branch] per stage],
#   fusion: [[per module] per stage]


def form_values(cfg: HRNetConfig) -> dict:
    """The form's values for ``cfg``: see the comment above for the keys."""
    return {
        "width": cfg.stages[0].channels[0],
        "input_h": cfg.input_hw[0],
        "input_w": cfg.input_hw[1],
        "head_kind": cfg.head.kind,
        "head_outputs": cfg.head.outputs,
        "modules": [st.modules for st in cfg.stages],
        "blocks": [list(st.blocks) for st in cfg.stages],
        "channels": [list(st.channels) for st in cfg.stages],
        "fusion": [list(st.fuse) for st in cfg.stages],
    }


def channels_for_width(width: int, branches: int) -> list[int]:
    """HRNet's channel rule: branch k has ``width * 2**k`` channels."""
    return [int(width) * 2**k for k in range(branches)]


def resize_fusion(flags: list[bool], modules: int) -> list[bool]:
    """``flags`` cut or extended to ``modules`` entries; new modules fuse (the paper's default)."""
    flags = [bool(f) for f in flags][:modules]
    return flags + [True] * (modules - len(flags))


def positive_int(value, field: str) -> int:
    """A form control's value as a positive integer (``2.0`` is 2); ``ConfigError`` naming ``field`` otherwise."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(field, f"must be a positive integer, got {value!r}")
    return value


def _form_int(values: dict, key: str, field: str, index: tuple[int, ...] = ()) -> int:
    value = values.get(key)
    for i in index:
        try:
            value = value[i]
        except (IndexError, KeyError, TypeError):
            raise ConfigError(field, "is missing") from None
    return positive_int(value, field)


def config_from_form(base: HRNetConfig, values: dict) -> HRNetConfig:
    """``base`` with the form's ``values`` applied (fields the form has no control for are kept).

    Field names in errors are the project schema's (``stages[1].channels[2]``, ``head.outputs``).
    A changed ``width`` re-derives every branch's channels (``width * 2**k``); otherwise the
    per-branch channels are taken as given. A fusion row shorter or longer than its stage's modules
    is cut or extended (``resize_fusion``).
    """
    width = _form_int(values, "width", "width")
    width_changed = width != base.stages[0].channels[0]
    stages = []
    for s, st in enumerate(base.stages):
        modules = _form_int(values, "modules", f"stages[{s}].modules", (s,))
        blocks = tuple(_form_int(values, "blocks", f"stages[{s}].blocks[{b}]", (s, b)) for b in range(st.branches))
        if width_changed:
            channels = tuple(channels_for_width(width, st.branches))
        else:
            channels = tuple(
                _form_int(values, "channels", f"stages[{s}].channels[{b}]", (s, b)) for b in range(st.branches)
            )
        rows = values.get("fusion") or []
        flags = resize_fusion(rows[s] if s < len(rows) else list(st.fuse), modules)
        stages.append(replace(st, modules=modules, blocks=blocks, channels=channels, fuse=tuple(flags)))
    kind = values.get("head_kind", base.head.kind)
    if kind not in head_kinds():  # every registered kind (hrnet_core.heads), not only the built-in ones
        raise ConfigError("head.kind", f"unknown head {kind!r}; expected one of {', '.join(head_kinds())}")
    head = replace(base.head, kind=kind, outputs=_form_int(values, "head_outputs", "head.outputs"))
    if kind != base.head.kind and "higher" in (kind, base.head.kind):
        head = _switch_higher(head, stages[-1].out_channels[0])
    hw = (_form_int(values, "input_h", "input_size.H"), _form_int(values, "input_w", "input_size.W"))
    return replace(base, stages=tuple(stages), head=head, input_hw=hw)


def _switch_higher(head: HeadConfig, branch0: int) -> HeadConfig:
    """Into the HigherHRNet head: its released layout (one deconvolution stage as wide as branch 0, as the
    concise schema's defaults); out of it: its settings back to their defaults, so the YAML shows no trace."""
    defaults = HeadConfig()
    fields = {f: getattr(defaults, f) for f in HIGHER_FIELDS}
    if head.kind == "higher":
        fields["deconv_channels"] = (branch0,)
    return replace(head, **fields)


def out_channels_note(cfg: HRNetConfig) -> str:
    """``channels x expansion`` note for bottleneck stages (the form edits planes, not outputs)."""
    bottleneck = [st.name for st in cfg.stages if BLOCK_EXPANSION[st.block] > 1]
    return f"{', '.join(bottleneck)} use bottlenecks: outputs are 4x the planes given." if bottleneck else ""


# ---- YAML ---------------------------------------------------------------------------------------


_PY_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*[ \t]*=(?!=)", re.MULTILINE)


def is_mmpose_text(text: str) -> bool:
    """Whether ``text`` reads as an mmpose ``.py`` config (a top-level ``NAME = ...`` line, which no YAML
    mapping has) rather than YAML."""
    return isinstance(text, str) and bool(_PY_ASSIGNMENT.search(text))


def parse_mmpose_text(text: str, source: str = "mmpose config", name: str = "mmpose"):
    """An mmpose ``.py`` config's text as a config (``HRNetConfig`` for mmpose's HRNet, ``NetworkConfig`` for
    another network), read without executing anything (``hrnet_core.mmpose_config``); ``ConfigError`` names
    ``source`` and the line or the mmpose field."""
    data = read_mmpose_text(text, source)
    try:
        if "model" not in data:
            raise ConfigError("", "has no top-level model = dict(...): not an mmpose model config")
        return config_from_mmpose(data["model"], codec=data.get("codec"), data_cfg=data.get("data_cfg"), name=name)
    except ConfigError as err:
        raise ConfigError(f"{source}: {err.field}" if err.field else source, err.message) from None


def parse_yaml(text: str, source: str = "YAML", name: str = "hrnet", mmpose: bool | None = None):
    """``text`` as a config: project schema, official experiment YAML, another network's ``arch:`` YAML, or an
    mmpose ``.py`` config (``mmpose``: None tells it by ``is_mmpose_text``). ``ConfigError`` names the field.

    ``name`` is used when the text has none (official files never do).
    """
    if mmpose if mmpose is not None else is_mmpose_text(text):
        return parse_mmpose_text(text, source=source, name=name)
    return load_config_text(text, source=source, name=name)


def yaml_diff(base: HRNetConfig, cfg: HRNetConfig, base_label: str = "preset", label: str = "current") -> str:
    """Unified diff of the two configs in the explicit schema ('' when they are equal)."""
    a = dump_config(base).splitlines(keepends=True)
    b = dump_config(cfg).splitlines(keepends=True)
    return "".join(difflib.unified_diff(a, b, fromfile=base_label, tofile=label))


# ---- what the Build page shows for a config -----------------------------------------------------


@dataclass(frozen=True)
class ModelView:
    """The Build page's numbers for one config, all from the analytic count (no model is built).

    ``gflops_paper``: Conv2d + Linear multiply-adds / 2^30, batch 1; ``attention_macs``: the window-attention
    matrix products (HRFormer), which are neither, so counted apart (0 for HRNet and Lite-HRNet); ``table``: the
    stage / branch table (HRNet), or one row per stage with its params and GFLOPs (the other networks)."""

    params: int
    gflops_paper: float
    fusions: int
    modules: int
    fusion_schedule: str
    output_shapes: tuple[tuple[int, ...], ...]
    table: pd.DataFrame = field(compare=False, repr=False)
    attention_macs: int = 0


def head_output_shapes(report, cfg: HRNetConfig) -> tuple[tuple[int, ...], ...]:
    """The model's output shape(s) read off the analytic breakdown: the head's last operator, or the
    V2p pyramid's ``fpn_convs`` (one per level), or HigherHRNet's ``final_layers`` (one per prediction)."""
    head = report.breakdown[report.breakdown["stage"] == "head"]
    if cfg.head.kind == "v2p":
        rows = head[head["name"].str.startswith("fpn_convs.")]
    elif cfg.head.kind == "higher":  # one prediction per resolution
        rows = head[head["name"].str.match(r"final_layers\.\d+$")]
    else:
        rows = head.tail(1)
    return tuple(tuple(int(v) for v in shape) for shape in rows["output_shape"])


def model_view(cfg: HRNetConfig, report=None) -> ModelView:
    """Params, paper GFLOPs, fusions, output shapes and the stage/branch table of ``cfg`` (any network).

    ``report``: its ``analysis.complexity.analyze`` report when already at hand. Raises
    ``ConfigError`` (field ``model``) for a model above ``hrnet_core.MAX_PARAMS``, as the builder would.
    """
    from analysis.complexity import analyze
    from analysis.complexity.summary import stage_rows

    report = analyze(cfg) if report is None else report
    if report.params > MAX_PARAMS:
        check_buildable(cfg)  # raises with the builder's own message
    if networks.is_network(cfg):  # another registered network: its parts plan and the report's rows
        fusions, modules = networks.module_counts(cfg)
        return ModelView(params=report.params, gflops_paper=report.gflops_paper, fusions=fusions, modules=modules,
                         fusion_schedule="custom", output_shapes=networks.output_shapes(cfg),
                         table=networks.stage_table(report), attention_macs=report.attention_macs)
    return ModelView(
        params=report.params,
        gflops_paper=report.gflops_paper,
        fusions=cfg.num_fusions,
        modules=cfg.num_modules,
        fusion_schedule=named_fusion(cfg) or "custom",
        output_shapes=head_output_shapes(report, cfg),
        table=pd.DataFrame(stage_rows(cfg)),
    )


# ---- saving -------------------------------------------------------------------------------------


class SaveError(UserInputError):
    """A config that cannot be saved under the name or folder given."""


def _check_name(name: str) -> str:
    name = name.strip()
    if name.endswith(".yaml"):
        name = name[: -len(".yaml")]
    if not _NAME_RE.match(name):
        raise SaveError(f"name: {name!r} is not a valid file name (letters, digits, '_', '-', '.', '+'; up to 100)")
    return name


def save_config(text: str, name: str, folder: Path | None = None, overwrite: bool = False) -> Path:
    """Save YAML ``text`` as ``folder/name.yaml`` and return the path.

    The text must parse as a valid config (nothing invalid is ever saved). The file is written to a
    temporary file in the same folder, flushed to disk and moved into place atomically, so a crash
    leaves either the old file or the new one. Presets in ``configs/`` are never written. An existing
    saved config is kept: without ``overwrite`` saving under its name is refused; with it, the old
    file is first moved to ``folder/.history/name-<timestamp>.yaml``.
    """
    parse_yaml(text)
    name = _check_name(name)
    folder = (user_config_dir() if folder is None else Path(folder)).expanduser()
    if folder.resolve() == PRESET_DIR.resolve():
        raise SaveError(f"folder: {folder} holds the presets, which are never overwritten; pick another folder")
    if name in all_presets() or name in list_network_presets():
        raise SaveError(f"name: {name!r} is a preset name; pick another so the two cannot be confused")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise SaveError(f"folder: cannot create {folder}: {err.strerror or err}") from None
    target = folder / f"{name}.yaml"
    if target.exists() and not overwrite:
        raise SaveError(f"name: {target} already exists; pick another name or choose to overwrite it")
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text if text.endswith("\n") else text + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        if overwrite:
            if target.exists():
                history = folder / ".history"
                history.mkdir(exist_ok=True)
                stamp = time.strftime("%Y%m%d-%H%M%S")
                os.replace(target, history / f"{name}-{stamp}-{os.getpid()}.yaml")
            os.replace(tmp, target)
        else:
            try:
                os.link(tmp, target)  # fails if the name appeared meanwhile: nothing is clobbered
            except FileExistsError:
                raise SaveError(f"name: {target} already exists; pick another name") from None
            except OSError:  # a file system without hard links: check, then move
                if target.exists():
                    raise SaveError(f"name: {target} already exists; pick another name") from None
                os.replace(tmp, target)
            else:
                os.unlink(tmp)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return target
