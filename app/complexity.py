"""Complexity: totals in the three FLOP conventions, where params and FLOPs go (by stage, branch,
component), the breakdown table, a side-by-side comparison of two configs and the measured profile."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import streamlit as st

from analysis.complexity import CONVENTIONS
from analysis.complexity.profiler import profile
from analysis.complexity.roofline import count_traffic, measure_peak, peak_dtype, roof, roofline
from app import common
from app.logic import networks
from app.logic.compare import COMPARE_FUSIONS, compare_groups, compare_totals, group_labels, highlight_changes
from app.logic.run_progress import throttled
from app.logic.system_info import cpu_load
from hrnet_core.device import device_label, resolve_device

ss = st.session_state
GROUPS = {"stage": "By stage", "branch": "By branch (resolution)", "component": "By component"}


SHARES = {"params_share": "params", "macs_share": "GFLOPs (paper)", "activations_share": "activations"}


def _group_chart(df: pd.DataFrame, by: str, title: str):
    long = df.assign(group=group_labels(df, by)).melt(
        id_vars=["group"], value_vars=list(SHARES), var_name="quantity", value_name="share")
    long["quantity"] = long["quantity"].map(SHARES)
    long["share %"] = 100 * long["share"]
    fig = px.bar(long, x="group", y="share %", color="quantity", barmode="group", title=title, height=340)
    fig.update_layout(margin=dict(l=10, r=10, t=40, b=10), legend_title_text="", xaxis_title=by)
    fig.update_xaxes(type="category")
    return fig


def _totals(rep) -> None:
    cols = st.columns(len(CONVENTIONS) + 2)
    cols[0].metric("Params", f"{rep.params / 1e6:.2f}M", help=f"{rep.params:,} parameters")
    for col, (name, conv) in zip(cols[1:], CONVENTIONS.items()):
        col.metric(f"GFLOPs · {name}", f"{conv.value(rep):.3f}")
        col.caption(conv.description)
    cols[-1].metric("Activations", f"{rep.activation_mib():.1f} MiB",
                    help=f"{rep.activations:,} elements written by the forward pass (batch 1, float32)")
    if rep.unsupported_ops:
        ops = ", ".join(f"{op} ({n} calls, {rep.uncounted_elements.get(op, 0):,} elements)"
                        for op, n in rep.unsupported_ops.items())
        st.caption(f"Operators fvcore does not count (reported, not hidden): {ops}.")


def _published(cfg) -> None:
    """The model's published params / GFLOPs beside ours, each in its source's convention, with the reason for
    any difference (``analysis.complexity.published``)."""
    res = common.published(cfg)
    with st.expander("Published vs computed", expanded=bool(len(res.table))):
        st.caption(res.note)
        if len(res.table):
            st.dataframe(res.table, hide_index=True, width="stretch", key="c_published")


def _breakdown(cfg, rep) -> None:
    tabs = st.tabs(list(GROUPS.values()) + ["By module", "Breakdown table"])
    for tab, by in zip(tabs, list(GROUPS) + ["module"]):
        with tab:
            df = rep.by(by)
            if by != "module":
                common.chart(_group_chart(df, by, f"Share of params, FLOPs and activations {GROUPS[by].lower()}"),
                             f"c_chart_{by}", f"{cfg.name}_shares_by_{by}")
            common.show_table(df)
    with tabs[-1]:
        common.show_table(rep.breakdown, height=420)
        st.download_button("Download CSV", rep.breakdown.to_csv(index=False).encode(),
                           file_name=f"{cfg.name}_breakdown.csv", mime="text/csv", key="c_csv")


def _comparison(cfg, hw) -> None:
    st.subheader("Compare two configs")
    fusions = [] if networks.unavailable(cfg, "fusion presets") else [f"current, fusion: {n}" for n in COMPARE_FUSIONS]
    options = fusions + list(common.config_sources())
    if ss.get("c_compare") not in options:  # e.g. a fusion variant kept from an HRNet before a network
        ss.pop("c_compare", None)
    c1, c2, c3 = st.columns([2, 2, 1])
    default = options.index("current, fusion: final_only") if fusions else 0
    choice = c2.selectbox("B", options, key="c_compare", index=default)
    same_size = c3.checkbox("B at A's input size", value=True, key="c_compare_size")
    other = (cfg.with_fusion(choice.split(": ", 1)[1]) if choice.startswith("current, fusion: ")
             else common.config_from_source(choice))
    hw_b = hw if same_size and other.family == cfg.family else None
    rep_a = common.complexity(cfg, hw)
    rep_b = common.complexity(other, hw_b)
    name_a = f"A: {cfg.name}, {networks.module_counts(cfg)[0]} fusions, {hw[0]}x{hw[1]}"
    name_b = f"B: {other.name}, {networks.module_counts(other)[0]} fusions, {rep_b.input_hw[0]}x{rep_b.input_hw[1]}"
    c1.markdown(f"**{name_a}**  \n**{name_b}**")
    totals = compare_totals(rep_a, rep_b, cfg, other, "A", "B")
    st.dataframe(highlight_changes(totals, ["A", "B"]), width="stretch")
    st.caption("Highlighted: every quantity that differs between A and B.")
    by = st.radio("Group by", list(GROUPS), format_func=GROUPS.get, horizontal=True, key="c_compare_by")
    groups = compare_groups(rep_a, rep_b, by, "A", "B", group_labels)
    long = groups.melt(id_vars=[by], value_vars=["GFLOPs A", "GFLOPs B"], var_name="config",
                       value_name="GFLOPs (paper)")
    long["config"] = long["config"].map({"GFLOPs A": name_a, "GFLOPs B": name_b})
    fig = px.bar(long, x=by, y="GFLOPs (paper)", color="config", barmode="group", height=340)
    fig.update_xaxes(type="category")
    fig.update_layout(margin=dict(l=10, r=10, t=30, b=10), legend_title_text="",
                      legend=dict(orientation="h", yanchor="bottom", y=1.02))
    common.chart(fig, "c_compare_chart", f"{cfg.name}_vs_{other.name}")
    st.dataframe(highlight_changes(groups, None), hide_index=True, width="stretch")


def _profile(cfg, hw) -> None:
    st.subheader("Measured latency and memory")
    if common.not_available(cfg, "latency profile"):
        return
    devices = common.device_choices()
    c1, c2, c3, c4 = st.columns([3, 3, 3, 2])
    device = c1.selectbox("Device", devices, key="c_prof_device",
                          help=f"auto = {device_label(resolve_device('auto'))}")
    mode = c2.radio("Per", ["stage", "branch"], horizontal=True, key="c_prof_mode")
    batches = c3.multiselect("Batch sizes", [1, 2, 4, 8, 16, 32, 64], default=[1], key="c_prof_batches")
    fast = c4.checkbox("Fast path", key="c_prof_fast",
                       help="BatchNorm folded into the convolutions, channels_last (hrnet_core.fast_path)")
    key = (common.key_of(cfg), hw, device, mode, tuple(batches), fast)
    if st.button("Measure on " + device_label(resolve_device(device)), key="c_prof_run", disabled=not batches):
        ss.pop("c_prof_cancelled", None)
        _measure(cfg, hw, device, mode, sorted(batches), fast, key)
    result = ss.get("c_profile")
    if ss.get("c_prof_cancelled") == key and (result is None or result[0] != key):
        st.info(f"Profile of {cfg.name} cancelled; press Measure to run it again.")
        return
    if result is None or result[0] != key:
        st.caption("On demand: times the stem, layer1, each transition, stage and the head (or each branch's "
                   "blocks and each fusion) on the chosen device; CUDA events on a GPU, perf_counter on the CPU.")
        return
    df, load = result[1], ss.get("c_prof_load")
    if load is not None and load[0] == key:  # the threads and load the figures were measured with
        st.caption(f"Measured with {load[1].describe()}.")
        if load[1].warning():
            st.warning(load[1].warning())
    total = df[df["part"] == "total"]
    parts = df[df["part"] != "total"]
    cols = st.columns(len(total) + 1)
    cols[0].metric("Device", str(df["device"].iloc[0]), help=str(df["dtype"].iloc[0]))
    for col, (_, row) in zip(cols[1:], total.iterrows()):
        col.metric(f"Forward, batch {row['batch']}", f"{row['median_ms']:.1f} ms",
                   help=f"{row['gmacs_per_s']:.1f} GMAC/s; peak {row['peak_mib']:.0f} MiB")
    fig = px.bar(parts.assign(batch=parts["batch"].astype(str)), x="part", y="median_ms", color="batch",
                 barmode="group", height=360, hover_data=["gmacs", "gmacs_per_s", "activation_mib", "peak_mib"],
                 title=f"Median latency per part on {df['device'].iloc[0]}")
    fig.update_xaxes(type="category")
    fig.update_layout(margin=dict(l=10, r=10, t=40, b=10))
    common.chart(fig, "c_prof_chart", f"{cfg.name}_profile")
    st.caption("gmacs_per_s shows why HRNet runs slower than its FLOPs suggest: the high-resolution branches and "
               "the fusions move many bytes per multiply-add.")
    common.show_table(df)
    rf = ss.get("c_roofline")
    if rf is not None and rf[0] == key:
        _roofline(rf[1])


def _measure(cfg, hw, device, mode, batches, fast, key) -> None:
    """Profile, traffic count and peak with a progress bar and a Cancel button. Pressing Cancel (or changing
    any input) makes Streamlit stop this script at the bar's next update, within one part's run."""
    dev = resolve_device(device)
    label = device_label(dev)
    slot = st.empty()
    with slot.container():
        c1, c2 = st.columns([5, 1])
        bar = c1.progress(0.0, text=f"Building {cfg.name} on {label}…")
        c2.button("Cancel", key="c_prof_cancel", on_click=lambda: ss.update(c_prof_cancelled=key))

    def report(fraction: float, what: str) -> None:
        bar.progress(fraction, text=f"Timing each part, {what}: {100 * fraction:.0f} %")

    try:
        model, _ = common.model(cfg, device)
        load = cpu_load()  # before the run: the load the measurement starts into, not the one it makes
        df = profile(cfg, device=device, batch_sizes=tuple(batches), mode=mode, input_hw=hw, model=model, fast=fast,
                     progress=throttled(report))
        bar.progress(1.0, text=f"Counting the bytes each part moves, batch {batches[0]}…")
        traffic = count_traffic(cfg.with_input(hw), model, device, mode, batches[0], fast)
        bar.progress(1.0, text=f"Measuring the peak of {label} (matrix products, memory copies)…")
        peak = measure_peak(dev, peak_dtype(df))
    except Exception:  # e.g. a batch above the activation bound: the page's guard shows it, no stale bar above it
        slot.empty()
        raise
    ss.c_profile = (key, df)
    ss.c_prof_load = (key, load)
    ss.c_roofline = (key, roofline(df[df["batch"] == batches[0]], traffic, peak))
    slot.empty()


def _roofline(rf) -> None:
    """Achieved GFLOP/s against arithmetic intensity per part, under the measured roof."""
    st.subheader("Roofline: why HRNet is slower than its FLOPs")
    g, peak = rf.grouped, rf.peak
    line = roof(peak, list(g["intensity"]))
    fig = px.scatter(g, x="intensity", y="gflop_per_s", text="part", size="gflop", log_x=True, log_y=True,
                     hover_data=["median_ms", "pct_of_peak", "op_calls", "read_mib", "written_mib"], height=420,
                     labels={"intensity": "arithmetic intensity (FLOP per byte moved)",
                             "gflop_per_s": "achieved GFLOP/s"},
                     title=f"Batch {int(g['batch'].iloc[0])} on {peak.device}: parts against the measured roof")
    fig.add_scatter(x=line["intensity"], y=line["gflop_per_s"], mode="lines", name="roof: min(peak, bandwidth x FLOP/byte)",
                    line=dict(dash="dash"))
    fig.update_traces(textposition="top center", selector=dict(mode="markers+text"))
    fig.update_layout(margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.2))
    common.chart(fig, "c_roofline_chart", "roofline")
    st.caption(peak.describe() + ". GFLOP = 2 x the paper's multiply-adds / 1e9; bytes: every operator's inputs "
               "and outputs (no cache reuse, an upper bound on traffic).")
    st.markdown(rf.text)
    common.show_table(g)


cfg = common.current_config()
st.title("Complexity")
st.markdown(common.model_caption(cfg))
c1, c2, c3 = st.columns(3)
h = c1.number_input("Input height", min_value=32, step=32, value=int(cfg.input_hw[0]), key=f"c_h_{cfg.input_hw}")
w = c2.number_input("Input width", min_value=32, step=32, value=int(cfg.input_hw[1]), key=f"c_w_{cfg.input_hw}")
hw = (int(h), int(w))
with common.guard("complexity"):
    cfg.with_input(hw)  # validates the size (multiples of the lowest branch's stride) with a named error
    rep = common.complexity(cfg, hw)
    _totals(rep)
    _published(cfg)
    _breakdown(cfg, rep)
    st.divider()
    with common.guard("comparison"):
        _comparison(cfg, hw)
    st.divider()
    with common.guard("profile"):
        _profile(cfg, hw)
