"""Build: pick a preset, edit it with form controls or as YAML, save it, compare it with the preset.

Form widgets and the YAML editor are two views of ``st.session_state.cfg`` (the current valid
config). Every edit goes through a callback that validates it: a valid edit replaces ``cfg`` and
refreshes the other view; an invalid one leaves ``cfg`` as it was and shows an error naming the field.
A classic HRNet gets HRNet's form; a model of another network (Lite-HRNet, HRFormer) one field per knob of
its registered spec (``app.logic.network_form``), with its error line beside the field.
"""

from __future__ import annotations

import functools
import operator
from dataclasses import replace

import streamlit as st

from analysis import settings
from app import common
from app.arch_interactive import interactive
from app.logic import config_edit as ce
from app.logic import form_extra, identity, networks
from app.logic import network_form as nf
from hrnet_core import ConfigError, dump_config
from hrnet_core.config import FUSION_PRESETS
from hrnet_core.errors import UserInputError
from hrnet_core.heads import head_kinds

ss = st.session_state
FUSION_LABELS = {"all": "all", "across_stage": "across stages", "final_only": "final only", "none": "none"}


# ---- widget keys <-> config -----------------------------------------------------------------------


def _slots(cfg):
    """``(widget key, path into the form's values)`` for every form control of ``cfg`` (``_values``)."""
    yield from (("b_width", ("width",)), ("b_in_h", ("input_h",)), ("b_in_w", ("input_w",)),
                ("b_head_kind", ("head_kind",)))
    if form_extra.head_uses_outputs(cfg):  # a V2p pyramid has no outputs to set: no control
        yield "b_head_out", ("head_outputs",)
    yield from (("b_stem", ("stem_channels",)), ("b_s1_block", ("stage1_block",)), ("b_s1_blocks", ("stage1_blocks",)),
                ("b_s1_planes", ("stage1_planes",)), ("b_up_mode", ("upsample_mode",)))
    if cfg.upsample.mode == "bilinear":
        yield "b_align", ("align_corners",)
    for s, stage in enumerate(cfg.stages):
        yield f"b_mod_{s}", ("modules", s)
        yield f"b_unit_{s}", ("stage_block", s)
        for b in range(stage.branches):
            yield f"b_blk_{s}_{b}", ("blocks", s, b)
            yield f"b_ch_{s}_{b}", ("channels", s, b)
        yield f"b_fuse_{s}", ("fusion", s)  # one multi-select per stage: the modules that fuse


def _values(cfg) -> dict:
    """The form's values of ``cfg``: ``config_edit.form_values`` and ``form_extra.extra_values``."""
    return {**ce.form_values(cfg), **form_extra.extra_values(cfg)}


def _module_label(m: int) -> str:
    return f"module{m}"  # 0-based as the diagram, the feature maps and the state_dict (stage3.0 = stage3.module0)


def _to_widget(path: tuple, value):
    """A form value as its widget holds it: a stage's fusion flags as the labels of the modules that fuse."""
    return [_module_label(m) for m, on in enumerate(value) if on] if path[0] == "fusion" else value


def _from_widget(path: tuple, value, current):
    """The inverse of ``_to_widget``: ``current`` (the form's value) gives a stage's module count."""
    return [_module_label(m) in (value or ()) for m in range(len(current))] if path[0] == "fusion" else value


def _widget_values(cfg) -> dict:
    """Widget key -> value for every form control of ``cfg`` (another network's: ``network_form``)."""
    if networks.is_network(cfg):
        return nf.widget_values(cfg)
    values = _values(cfg)
    return {key: _to_widget(path, functools.reduce(operator.getitem, path, values)) for key, path in _slots(cfg)}


def _read_form(cfg) -> dict:
    """``cfg``'s form values with what the widgets hold now."""
    values = _values(cfg)
    for key, path in _slots(cfg):
        if key in ss:
            parent = functools.reduce(operator.getitem, path[:-1], values)
            parent[path[-1]] = _from_widget(path, ss[key], parent[path[-1]])
    return values


def _push(cfg, yaml_text: str | None = None) -> None:
    """Show ``cfg`` in every widget (only from callbacks or before the widgets are drawn)."""
    for key in [k for k in ss if isinstance(k, str) and k.startswith("b_fuse_")]:
        del ss[key]
    for key, value in _widget_values(cfg).items():
        ss[key] = value
    ss.yaml_text = dump_config(cfg) if yaml_text is None else yaml_text
    ss.b_save_name = cfg.name


def _seed_widgets(cfg) -> None:
    """Widgets not drawn on the last run (another page was open) lose their state: restore it."""
    values = _widget_values(cfg)
    if any(k not in ss for k in values) or "yaml_text" not in ss:
        for key, value in values.items():
            ss.setdefault(key, value)
        ss.setdefault("yaml_text", dump_config(cfg) if ss.get("base_cfg") != cfg else ss.get("base_text", ""))
        ss.setdefault("b_save_name", cfg.name)
        if ss.get("build_error", {}).get("where") in ("form", "yaml", "field"):
            ss.build_error = {}  # the invalid input it was about is gone


def _fail(where: str, err: Exception, widget: str | None = None) -> None:
    """Record the one error line of an edit (``widget``: the field it is shown beside)."""
    ss.build_error = {"where": where, "message": common.error_line(err), "widget": widget}


def _ok(message: str = "") -> None:
    ss.build_error = {"where": "ok", "message": message} if message else {}


# ---- callbacks ------------------------------------------------------------------------------------


def _on_preset() -> None:
    label = ss.b_preset
    if label is None:  # the placeholder of a pasted or uploaded origin: nothing picked
        return
    try:
        cfg = common.config_from_source(label)
        text = open(common.config_sources()[label], encoding="utf-8").read()
    except Exception as err:  # noqa: BLE001 - shown inline
        _fail("preset", err)
        return
    ss.cfg = cfg
    common.set_origin(cfg, label, text, f"preset {label}")
    _push(cfg, yaml_text=text)
    _ok()


def _named(cfg):
    """``cfg`` named after the origin it was edited from (``identity.derived_name``)."""
    base = ss.get("base_cfg")
    return replace(cfg, name=identity.derived_name(base, cfg)) if base is not None else cfg


# Label of every HRNet form field as last drawn: the error of an edit names the field and the value typed.
FIELD_LABELS: dict[str, str] = {}


def _on_form(widget: str | None = None) -> None:
    try:
        values = _read_form(ss.cfg)
        cfg = _named(form_extra.apply_extra(ce.config_from_form(ss.cfg, values), values))
        common.view(cfg)  # refuses e.g. a model above the builder's size bound
    except Exception as err:  # noqa: BLE001
        if widget is None:
            _fail("form", err)
        elif isinstance(err, UserInputError):  # beside the field, with what was typed there (nothing clamps it)
            _fail("field", UserInputError(f"{FIELD_LABELS.get(widget, widget)} = {ss.get(widget)!r}: "
                                          f"{common.error_line(err)}"), widget)
        else:  # a bug, not the input: said as such, beside the field
            _fail("field", err, widget)
        return
    ss.cfg = cfg
    _push(cfg)
    _ok()


def _on_network_field(widget: str) -> None:
    """A field of another network's form changed: every field read, the config rebuilt through the network's
    parser (``network_form.apply_form``); a refusal is one line beside the field."""
    try:
        values = {k: ss[k] for k in nf.widget_values(ss.cfg) if k in ss}
        cfg = _named(nf.apply_form(ss.cfg, values, edited=widget))
        common.view(cfg)
    except Exception as err:  # noqa: BLE001 - shown beside the field
        _fail("field", err, widget)
        return
    ss.cfg = cfg
    _push(cfg)
    _ok()


def _on_fusion_preset(name: str) -> None:
    ss.cfg = _named(ss.cfg.with_fusion(name))
    _push(ss.cfg)
    _ok()


def _apply_text(text: str, source: str, file_name: str | None = None) -> None:
    """An uploaded file or an official YAML is a new origin named after itself (the diff compares against
    it); a project-schema text keeps the name it spells, else is named after the origin it edits."""
    try:
        mmpose = file_name.endswith(".py") if file_name else None  # an upload: its extension says which
        cfg = ce.parse_yaml(text, source=source, name=ss.cfg.name, mmpose=mmpose)
        who = identity.text_identity(text, source, cfg, file_name)
        if who.name is not None:
            cfg = replace(cfg, name=who.name)
        elif cfg.name == ss.cfg.name:
            cfg = _named(cfg)
        common.view(cfg)
    except Exception as err:  # noqa: BLE001
        _fail("yaml", err)
        return
    if file_name or who.official:
        common.set_origin(cfg, cfg.name, text, who.origin)
        ss.b_preset = None  # no preset is the origin now: the picker says where the model came from
    ss.cfg = cfg
    _push(cfg, yaml_text=text)
    _ok()


def _on_yaml() -> None:
    _apply_text(ss.yaml_text, "YAML")


def _on_upload() -> None:
    upload = ss.get("b_upload")
    if upload is None:
        return
    try:
        text = upload.getvalue().decode("utf-8")
    except UnicodeDecodeError:
        _fail("yaml", ConfigError(upload.name, "is not UTF-8 text (a YAML file or an mmpose .py config is expected)"))
        return
    ss.yaml_text = text
    _apply_text(text, upload.name, file_name=upload.name)


def _on_save() -> None:
    # The current valid model under the name asked for (a pasted text may spell another name, or none).
    name = (ss.get("b_save_name") or ss.cfg.name).strip().removesuffix(".yaml")
    try:
        text = dump_config(replace(ss.cfg, name=name))
        path = ce.save_config(text, name, overwrite=ss.get("b_overwrite", False))
    except Exception as err:  # noqa: BLE001
        _fail("save", err)
        return
    label = f"saved: {path.stem}"
    cfg = replace(ss.cfg, name=path.stem)
    common.set_origin(cfg, label, path.read_text(encoding="utf-8"), f"saved config {path}")
    ss.cfg, ss.b_preset = cfg, label
    _push(cfg, yaml_text=ss.base_text)
    _ok(f"Saved to {path}; it is listed in the preset picker as '{label}'.")


# ---- page -----------------------------------------------------------------------------------------


def _field_error(widget: str, target=None) -> None:
    """The error line of the last edit of field ``widget``, drawn where the field is."""
    err = ss.get("build_error", {})
    if err.get("where") == "field" and err.get("widget") == widget:
        (target or st).error(err["message"])


def _knob_widget(field: nf.KnobField) -> None:
    """One knob's field, its widget chosen by the value it holds (``network_form.KnobField.widget``)."""
    kwargs = dict(key=field.widget_key, help=field.help or None, on_change=_on_network_field,
                  args=(field.widget_key,))
    if field.widget == "bool":
        st.checkbox(field.key, **kwargs)
    elif field.widget == "int":
        st.number_input(field.key, step=1, **kwargs)
    elif field.widget == "float":
        st.number_input(field.key, step=0.01, format="%.4f", **kwargs)
    else:
        st.text_input(field.key, **kwargs)
    _field_error(field.widget_key)


def _network_form(cfg) -> None:
    """The form of another network's model: input size, head outputs and one field per knob of its spec."""
    st.subheader("Form")
    st.caption(f"{networks.network_title(cfg)}: one field per design knob of the network (its mmpose backbone "
               "dict's keys); a list is one YAML value, e.g. [40, 80, 160]. Each edit is checked by the network's "
               "own parser; fields that must agree can be edited one after the other (the model changes once they "
               "do).")
    cols = st.columns(3)
    for col, (label, widget) in zip(cols, (("Input height", nf.INPUT_H), ("Input width", nf.INPUT_W))):
        col.number_input(label, step=32, key=widget, on_change=_on_network_field, args=(widget,))  # no clamp
        _field_error(widget, col)
    if cfg.head is not None:
        cols[2].number_input("Head outputs (joints)", step=1, key=nf.HEAD_OUTPUTS, on_change=_on_network_field,
                             args=(nf.HEAD_OUTPUTS,), help="The heatmap head's final convolution on the last map.")
        _field_error(nf.HEAD_OUTPUTS, cols[2])
    else:
        cols[2].caption("No head: the model returns the backbone's maps.")
    fields = nf.knob_fields(cfg)
    cols = st.columns(2)
    for i, field in enumerate(fields):
        with cols[i % 2]:
            _knob_widget(field)


def _number(target, label: str, key: str, name: str | None = None, **kwargs) -> None:
    """An HRNet form field (no ``min_value``: a typed -5 stays -5 and is refused as such) and its error line right
    under it; ``name``: how the error names the field (default: its label)."""
    FIELD_LABELS[key] = name or label
    kwargs.setdefault("step", 1)  # an integer field (Streamlit would infer a float one without min_value)
    target.number_input(label, key=key, on_change=_on_form, args=(key,), **kwargs)
    _field_error(key, target)


def _form(cfg) -> None:
    if networks.is_network(cfg):
        _network_form(cfg)
        return
    st.subheader("Form")
    c1, c2, c3 = st.columns(3)
    _number(c1, "Width (branch 1 channels)", "b_width", step=2, help="Sets every branch's channels to width x 2^k.")
    _number(c2, "Input height", "b_in_h", step=32)
    _number(c3, "Input width", "b_in_w", step=32)
    c1, c2, _ = st.columns(3)
    kinds = ["cls"] if cfg.family == "cls" else [k for k in head_kinds() if k != "cls"]  # every registered kind
    if ss.get("b_head_kind") not in kinds:
        kinds = [*kinds, ss.get("b_head_kind")]
    c1.selectbox("Head", kinds, key="b_head_kind", on_change=_on_form,
                 help="v1: heatmaps from the 1/4 branch; v2: all branches concatenated; v2p: feature pyramid")
    if form_extra.head_uses_outputs(cfg):
        _number(c2, "Head outputs (joints, classes, landmarks)", "b_head_out")
    else:
        c2.caption(f"Head {cfg.head.kind}: a feature pyramid of {cfg.head.levels} levels x {cfg.head.channels} "
                   "channels, no class or joint outputs to set.")
    with st.expander("Stem, stage 1 and upsampling"):
        c1, c2, c3, c4 = st.columns(4)
        _number(c1, "Stem channels", "b_stem", help="Output channels of the two stride-2 3x3 convolutions (official: 64).")
        c2.selectbox("Stage 1 block", form_extra.BLOCKS, key="b_s1_block", on_change=_on_form)
        _number(c3, "Stage 1 blocks", "b_s1_blocks")
        _number(c4, "Stage 1 planes", "b_s1_planes", help="Bottleneck outputs are 4x the planes.")
        c1, c2, _ = st.columns([1, 1, 2])
        c1.selectbox("Upsampling", form_extra.UPSAMPLE_MODES, key="b_up_mode", on_change=_on_form,
                     help="nearest: input sides must be multiples of 32; bilinear: resized to the target size.")
        if cfg.upsample.mode == "bilinear":
            c2.checkbox("align_corners", key="b_align", on_change=_on_form)

    st.markdown("**Stages** — modules, and residual units and channels per branch (resolution)")
    for s, stage in enumerate(cfg.stages):
        cols = st.columns([1.2] + [1] * stage.branches + [max(0.01, 4 - stage.branches)])
        _number(cols[0], f"Stage {s + 2} modules", f"b_mod_{s}")
        cols[0].selectbox(f"Stage {s + 2} block", form_extra.BLOCKS, key=f"b_unit_{s}", on_change=_on_form)
        for b in range(stage.branches):
            with cols[b + 1]:
                _number(st, f"1/{4 * 2**b} blocks", f"b_blk_{s}_{b}", f"Stage {s + 2} 1/{4 * 2**b} blocks")
                _number(st, f"1/{4 * 2**b} channels", f"b_ch_{s}_{b}", f"Stage {s + 2} 1/{4 * 2**b} channels")
    note = ce.out_channels_note(cfg)
    if note:
        st.caption(note)

    st.markdown("**Fusion schedule** — the modules that end with an exchange unit (click one to toggle it)")
    for s, stage in enumerate(cfg.stages):  # a row per stage: side by side, a stage's module labels were cut
        st.pills(f"Stage {s + 2}", [_module_label(m) for m in range(stage.modules)], selection_mode="multi",
                      key=f"b_fuse_{s}", on_change=_on_form)
    cols = st.columns(len(FUSION_PRESETS) + 1)
    cols[0].caption(f"{cfg.num_fusions} fusions · set all:")
    for i, name in enumerate(FUSION_PRESETS):
        cols[i + 1].button(FUSION_LABELS[name], key=f"b_fp_{name}", on_click=_on_fusion_preset, args=(name,))
    err = ss.get("build_error", {})
    if err.get("where") == "form":
        st.error(f"Invalid form input — {err['message']}")


def _yaml_editor(cfg) -> None:
    st.subheader("YAML")
    st.text_area("Project schema, an official experiment YAML, another network's arch: YAML or an mmpose .py config "
                 "(applied when the box loses focus, or Ctrl+Enter)", key="yaml_text", height=360, on_change=_on_yaml)
    err = ss.get("build_error", {})
    if err.get("where") == "yaml":
        st.error(f"Invalid config — {err['message']}")
    st.file_uploader("…or upload a YAML file or an mmpose .py config (read, never executed)",
                     type=["yaml", "yml", "py"], key="b_upload", on_change=_on_upload)
    c1, c2 = st.columns(2)
    c1.download_button("Download YAML", data=dump_config(cfg), file_name=f"{cfg.name}.yaml", mime="text/yaml",
                       help="The current valid config in the project's explicit schema.")
    with c2.popover("Save YAML"):
        st.text_input("Name", key="b_save_name")
        st.checkbox("Overwrite a saved config of that name (the old one is kept in .history/)", key="b_overwrite")
        st.caption(f"Folder: {settings.user_config_dir()}")
        st.button("Save", on_click=_on_save, key="b_save")
    if err.get("where") == "save":
        st.error(f"Save: {err['message']}")
    elif err.get("where") == "ok":
        st.success(err["message"])


def _numbers(cfg) -> ce.ModelView:
    """The edited model's numbers, under the preset picker: in view while the form is edited, and the first
    elements a rerun redraws (a page of ~150 elements reaches the browser one at a time). Returns the view."""
    err = ss.get("build_error", {})
    if err.get("where") in ("form", "yaml", "field"):
        st.warning("The edit below is invalid, so these are still the last valid model's numbers.")
    st.markdown(common.model_caption(cfg))
    v = common.view(cfg)
    cols = st.columns(5 if v.attention_macs else 4)
    cols[0].metric("Params", f"{v.params / 1e6:.2f}M", help=f"{v.params:,}")
    cols[1].metric("GFLOPs (paper)", f"{v.gflops_paper:.2f}", help="Conv and Linear multiply-adds / 2^30, batch 1")
    if v.attention_macs:  # HRFormer's window attention: neither Conv2d nor Linear, so not in the paper's GFLOPs
        cols.pop(2).metric("Attention GMACs", f"{v.attention_macs / 2**30:.2f}",
                           help=f"{v.attention_macs:,} multiply-adds of the window attention's matrix products "
                                "(q @ k^T, attn @ v) / 2^30, batch 1: neither Conv2d nor Linear, so not in GFLOPs")
    cols[2].metric("Fusions", f"{v.fusions} of {v.modules}")
    shapes = ", ".join("x".join(map(str, s)) for s in v.output_shapes)
    long = len(shapes) > 28  # a V2p pyramid's five maps would be cut: the metric counts them, a caption lists them
    cols[3].metric("Output", f"{len(v.output_shapes)} maps" if long else shapes, help=shapes)
    if long:
        st.caption(f"Output maps (N x C x H x W): {shapes}")
    return v


def _model_view(cfg, v: ce.ModelView) -> None:
    st.subheader("Current model")
    if not common.not_available(cfg, "diagram"):
        with common.guard("diagram"):
            common.show_diagram(cfg, "stage", key="b_diagram")
        if st.toggle("Interactive preview (zoom, pan, hover a node for its numbers)", key="b_interactive"):
            with common.guard("interactive view"):
                interactive(cfg, "stage", None, key="b_view")
    common.show_table(v.table)  # the whole width: its nine columns uncut
    base = ss.get("base_cfg")
    with st.expander(f"Diff against the origin ({ss.get('base_origin', ss.get('base_name'))})", expanded=True):
        diff = ce.yaml_diff(base, cfg, ss.get("base_name", "preset"), cfg.name) if base is not None else ""
        if diff:
            st.code(diff, language="diff")
        else:  # no code block: its highlighter (1.5 MB of script) is not loaded for the first page's preset
            st.caption("(no difference)")


cfg = common.current_config()
_seed_widgets(cfg)
st.title("Build")
sources = common.config_sources()
if ss.get("b_preset") not in sources:  # an origin that is no preset (pasted, uploaded, a link's): none picked
    ss.b_preset = ss.get("base_name") if ss.get("base_name") in sources else None
st.selectbox("Preset (the model zoo in configs/ and configs/networks/, and your saved configs)", list(sources),
             key="b_preset", on_change=_on_preset,
             placeholder=f"{ss.get('base_name')} ({ss.get('base_origin')}) — pick a preset")
if ss.get("build_error", {}).get("where") == "preset":
    st.error(f"Preset: {ss.build_error['message']}")
view = _numbers(cfg)
left, right = st.columns([3, 2], gap="large")
with left:
    _form(cfg)
with right:
    _yaml_editor(cfg)
st.divider()
_model_view(cfg, view)
