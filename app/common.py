"""State, caching and error display shared by the app's pages.

Session state holds the current valid config (``cfg``), the origin it was edited from (``base_name``,
``base_cfg``, ``base_text``, ``base_origin``: a preset, a saved config, an uploaded or pasted official YAML) and the image chosen for feature maps. Everything heavy is cached by config hash:
models with ``st.cache_resource``, tables, reports and diagrams with ``st.cache_data``.
"""

from __future__ import annotations

import contextlib
import os

import streamlit as st
import torch

from analysis.complexity import analyze
from analysis.complexity.published import PublishedComparison, published_vs_computed
from analysis.diagram.build import build_diagram, dot_program, render_bytes
from analysis.features.weights import build_weights
from analysis.figure_files import MIMES, export_unavailable, figure_bytes
from analysis.imaging.images import DEFAULT_IMAGE
from app.logic import networks
from app.logic.arch_view import ArchLayout, build_layout, dot_layout
from app.logic.config_edit import (
    DEFAULT_PRESET,
    ModelView,
    all_presets,
    config_hash,
    list_saved,
    load_preset,
    model_view,
    parse_yaml,
)
from app.logic.tables import display_frame, table_spec
from app.logic.url_state import UrlStateError, decode_state, encode_state
from hrnet_core import HRNetConfig, UserInputError, load_config
from hrnet_core.device import prepare, resolve_device
from hrnet_core.errors import quote

# ---- errors -------------------------------------------------------------------------------------


def error_line(err: BaseException) -> str:
    """One line for the UI: a user error's own message, or "internal error: " and the class and message of a bug."""
    if isinstance(err, UserInputError):
        return " ".join(str(err).split())
    text = quote(" ".join(str(err).split()), 200)[1:-1]
    return f"internal error: {type(err).__name__}: {text}" if text else f"internal error: {type(err).__name__}"


@contextlib.contextmanager
def guard(context: str = ""):
    """Show any error raised inside as one ``st.error`` line (never a traceback).

    Streamlit's own rerun/stop signals derive from ``BaseException`` and pass through.
    """
    try:
        yield
    except Exception as err:  # noqa: BLE001 - the UI must never show a traceback
        prefix = f"{context}: " if context else ""
        st.error(prefix + error_line(err))


# ---- session state ------------------------------------------------------------------------------


def init_state() -> None:
    """The app's state on a session's first run: the model the page's URL holds (``app.logic.url_state``),
    else pose W32 256x192; and the bundled astronaut photo. A link that cannot be read shows one error line
    and leaves the defaults."""
    ss = st.session_state
    if "cfg" not in ss:
        cfg = load_preset(DEFAULT_PRESET)
        ss.cfg = cfg
        set_origin(cfg, DEFAULT_PRESET, all_presets()[DEFAULT_PRESET].read_text(encoding="utf-8"),
                   f"preset {DEFAULT_PRESET}")
        with guard("link"):
            _restore_from_url()
    ss.setdefault("image_name", DEFAULT_IMAGE)


def _restore_from_url() -> None:
    state = decode_state(st.query_params.to_dict())
    if state.empty:
        return
    ss = st.session_state
    origin, label, text, where = ss.base_cfg, ss.base_name, ss.base_text, ss.base_origin
    if state.preset is not None:
        sources = config_sources()
        if state.preset not in sources:
            raise UrlStateError(f"URL parameter preset: no preset or saved config {quote(state.preset)} here")
        origin, label = config_from_source(state.preset), state.preset
        text = open(sources[label], encoding="utf-8").read()
        where = f"preset {label}" if label in all_presets() else f"saved config {sources[label]}"
    elif state.origin_text is not None:
        origin = parse_yaml(state.origin_text, source="URL parameter origin")
        label, text, where = origin.name, state.origin_text, state.origin_label or "link"
    cfg = parse_yaml(state.cfg_text, source="URL parameter cfg") if state.cfg_text is not None else origin
    view(cfg)  # refuses a model the builder would refuse, as an edit would
    ss.cfg = cfg
    set_origin(origin, label, text, where)


def sync_url() -> None:
    """Write the current model into the page's query parameters (only when they change)."""
    ss = st.session_state
    if "cfg" not in ss:
        return
    preset = ss.base_name if ss.base_name in config_sources() else None
    params = encode_state(preset, ss.base_cfg, ss.cfg, ss.get("base_origin", ""))
    if st.query_params.to_dict() != params:
        st.query_params.from_dict(params)


def set_origin(cfg: HRNetConfig, label: str, text: str, origin: str) -> None:
    """Make ``cfg`` the origin edits are named after and diffed against: ``label`` (a preset picker label or
    the model's own name), its YAML ``text`` and where it came from (``origin``, shown on the page)."""
    ss = st.session_state
    ss.base_cfg, ss.base_name, ss.base_text, ss.base_origin = cfg, label, text, origin


def current_config() -> HRNetConfig:
    init_state()
    return st.session_state.cfg


def config_sources() -> dict[str, str]:
    """Picker label -> path over the model zoo (``configs/`` for HRNet, ``configs/networks/`` for the other
    networks) and the user's saved configs."""
    out = {name: str(path) for name, path in all_presets().items()}
    for name, path in list_saved().items():
        out[f"saved: {name}"] = str(path)
    return out


@st.cache_data(max_entries=128, show_spinner=False)
def load_source(path: str, mtime: float) -> HRNetConfig:  # mtime: a saved file edited on disk reloads
    return load_config(path)


def config_from_source(label: str) -> HRNetConfig:
    path = config_sources()[label]
    return load_source(path, os.path.getmtime(path))


# ---- cached computations --------------------------------------------------------------------------


def key_of(cfg: HRNetConfig) -> str:
    return config_hash(cfg)


@st.cache_data(max_entries=256, show_spinner=False)
def _complexity(key: str, _cfg: HRNetConfig, input_hw: tuple[int, int] | None, backend: str):
    return analyze(_cfg, input_hw=input_hw, backend=backend)


def complexity(cfg: HRNetConfig, input_hw: tuple[int, int] | None = None, backend: str = "analytic"):
    """``analysis.complexity.analyze`` cached by config hash, input size and backend."""
    hw = tuple(int(v) for v in input_hw) if input_hw else None
    return _complexity(key_of(cfg), cfg, hw, backend)


@st.cache_data(max_entries=64, show_spinner=False)
def _published(key: str, _cfg: HRNetConfig) -> PublishedComparison:
    return published_vs_computed(_cfg)


def published(cfg: HRNetConfig) -> PublishedComparison:
    """``analysis.complexity.published.published_vs_computed`` cached by config hash (the config's name is
    part of the hash: it names the preset whose published figures apply)."""
    return _published(key_of(cfg), cfg)


@st.cache_data(max_entries=256, show_spinner=False)
def _model_view(key: str, _cfg: HRNetConfig) -> ModelView:
    return model_view(_cfg, complexity(_cfg))


def view(cfg: HRNetConfig) -> ModelView:
    """Params, GFLOPs, fusions, output shapes and the stage table (``config_edit.model_view``), cached.
    Raises ``ConfigError`` for a model the builder would refuse."""
    return _model_view(key_of(cfg), cfg)


@st.cache_data(max_entries=256, show_spinner=False)
def _diagram_dot(key: str, _cfg: HRNetConfig, level: str, module: str | None, annotate: str | None) -> str:
    return build_diagram(_cfg, level=level, module=module, annotate=annotate).source


def diagram_dot(cfg: HRNetConfig, level: str = "stage", module: str | None = None, annotate: str | None = None) -> str:
    """The diagram's DOT source, cached by config hash and options."""
    return _diagram_dot(key_of(cfg), cfg, level, module, annotate)


@st.cache_data(max_entries=256, show_spinner=False)
def _diagram_bytes(key: str, _cfg: HRNetConfig, level: str, module: str | None, annotate: str | None,
                   fmt: str) -> bytes:
    return render_bytes(build_diagram(_cfg, level=level, module=module, annotate=annotate), fmt)


def diagram_bytes(cfg: HRNetConfig, level: str, module: str | None, annotate: str | None, fmt: str) -> bytes:
    """The diagram rendered by Graphviz (svg, png) or its DOT text, cached."""
    return _diagram_bytes(key_of(cfg), cfg, level, module, annotate, fmt)


def show_diagram(cfg: HRNetConfig, level: str = "stage", key: str = "diagram") -> None:
    """The diagram at ``level`` in the container ``key``, laid out by the server's Graphviz and shown as an SVG
    image (``diagram_bytes``, cached by config hash). ``st.graphviz_chart`` would lay the graph out again in the
    page's main thread on every edit, 25-40 ms before the edited numbers above it are painted (issue 21, point 1);
    without Graphviz's ``dot`` on the server it still draws it. Raises ``DiagramError`` for a model it cannot draw.
    """
    try:
        dot_program()
    except UserInputError:  # no Graphviz on the server: the browser lays the graph out
        st.graphviz_chart(diagram_dot(cfg, level), width="stretch")
        return
    st.container(key=key).image(diagram_bytes(cfg, level, None, None, "svg").decode("utf-8"), width="stretch",
                                alt=f"{cfg.name}: diagram at {level} level")


@st.cache_data(max_entries=64, show_spinner=False)
def _arch_layout(key: str, _cfg: HRNetConfig, level: str, module: str | None) -> ArchLayout:
    positions, svg = dot_layout(build_diagram(_cfg, level=level, module=module).source)
    return build_layout(_cfg, positions, complexity(_cfg).breakdown, svg)


def arch_layout(cfg: HRNetConfig, level: str = "stage", module: str | None = None) -> ArchLayout:
    """The interactive view's layout (``app.logic.arch_view``): Graphviz positions and each node's numbers, cached."""
    return _arch_layout(key_of(cfg), cfg, level, module)


@st.cache_resource(max_entries=4, show_spinner=False)
def _model(key: str, _cfg: HRNetConfig, device: str, checkpoint_key: str, _checkpoint: str | None):
    model, status = build_weights(_cfg, _checkpoint)
    return prepare(model, resolve_device(device)), status


def model(cfg: HRNetConfig, device: str = "auto", checkpoint: str | None = None):
    """``(model, weights status)``: built once per config, device and checkpoint, in eval mode; without a
    checkpoint an untrained network (``analysis.features.weights``: PyTorch's default init, seed 0)."""
    dev = str(resolve_device(device))
    ck_key = f"{checkpoint}:{os.path.getmtime(checkpoint)}" if checkpoint else ""
    return _model(key_of(cfg), cfg, dev, ck_key, checkpoint)


# ---- the model a page shows (the sidebar follows it) ------------------------------------------------
SHOWN_KEY = "shown_model"


def show_model(cfg: HRNetConfig, source: str) -> None:
    """Tell the sidebar that this page shows ``cfg`` (e.g. a checkpoint's own model), not the Build page's.
    Holds for the current script run only (``streamlit_app`` clears it before each page runs)."""
    st.session_state[SHOWN_KEY] = (cfg, source)


def shown_model() -> tuple[HRNetConfig, str]:
    """``(config, source)`` the sidebar describes: what the page asked for, else the current config."""
    return st.session_state.get(SHOWN_KEY) or (current_config(), "Current model")


# ---- small display helpers -----------------------------------------------------------------------


def device_choices() -> list[str]:
    """The devices a page offers: auto, cpu, and cuda when torch sees a GPU."""
    return ["auto", "cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@st.cache_data(max_entries=32, show_spinner=False)
def _figure_file(spec: str, fmt: str) -> bytes:
    import plotly.io as pio

    return figure_bytes(pio.from_json(spec), fmt)


@st.cache_data(show_spinner=False)
def _export_unavailable() -> str | None:
    return export_unavailable()


def chart(fig, key: str, stem: str, target=None, **kwargs):
    """``fig`` as ``st.plotly_chart`` (in ``target``, default the page) with SVG and PDF downloads under it,
    drawn by Kaleido only when a button is pressed (``analysis.figure_files``; about 2.5 s, then cached) and
    named ``stem.svg`` / ``stem.pdf``; the chart's camera button saves an SVG too. Returns what
    ``st.plotly_chart`` returns (the selection event with ``on_select``)."""
    target = target or st
    config = {"displaylogo": False, "toImageButtonOptions": {"format": "svg", "filename": stem}}
    event = target.plotly_chart(fig, key=key, width="stretch", config=config, **kwargs)
    why = _export_unavailable()
    if why:
        target.caption(why)
        return event
    with target.container(horizontal=True):
        for fmt in ("svg", "pdf"):  # the figure serialized only when a button is pressed, not on every rerun
            st.download_button(f"{fmt.upper()}", data=lambda fmt=fmt: _figure_file(fig.to_json(), fmt), file_name=f"{stem}.{fmt}",
                               mime=MIMES[fmt], key=f"{key}_dl_{fmt}", on_click="ignore", icon=":material/download:",
                               help=f"this figure as {fmt.upper()} ({stem}.{fmt}), for a paper's appendix")
    return event


def show_table(df, target=None, **kwargs) -> None:
    """``df`` as ``st.dataframe`` with ``app.logic.tables``' formats: thousands separators, units in headers,
    shares in percent, scientific notation for small values, empty cells for missing values, text columns wide enough."""
    formats = {"int": "localized", "float": "%.4f", "small": "%.3e", "share": "%.2f"}  # shares: percentages, two decimals in every row
    config = {}
    df = display_frame(df)
    for spec in table_spec(df):
        if spec.kind in formats:
            config[spec.name] = st.column_config.NumberColumn(spec.label, format=formats[spec.kind], width=spec.width)
        elif spec.kind == "bool":
            config[spec.name] = st.column_config.CheckboxColumn(spec.label, width=spec.width)
        else:
            config[spec.name] = st.column_config.TextColumn(spec.label, width=spec.width)
    kwargs.setdefault("hide_index", True)
    kwargs.setdefault("width", "stretch")
    (target or st).dataframe(df, column_config=config, **kwargs)


def not_available(cfg, feature: str) -> bool:
    """Show the one line saying that ``feature`` does not take ``cfg``'s network yet (``app.logic.networks``)
    and return True; False (nothing shown) where it does."""
    line = networks.unavailable(cfg, feature)
    if line:
        st.info(line)
    return line is not None


def model_caption(cfg: HRNetConfig) -> str:
    """The one-line description of ``cfg`` (page headers, the sidebar): name, network, head, params, GFLOPs
    (Conv2d + Linear MACs / 2^30), fusing modules and input size."""
    v = view(cfg)
    if networks.is_network(cfg):
        return networks.caption(cfg, v.params, v.gflops_paper, v.attention_macs, v.fusions, v.modules)
    h, w = cfg.input_hw
    params = f"{v.params / 1e6:.1f}M" if v.params >= 1e5 else f"{v.params / 1e3:.1f}K"
    return (f"**{cfg.name}** · {cfg.family} · W{cfg.stages[0].channels[0]} · head {cfg.head.kind} · {params} params · "
            f"{v.gflops_paper:.2f} GFLOPs · {v.fusions}/{v.modules} modules fuse ({v.fusion_schedule}) · "
            f"input {h}x{w}")
