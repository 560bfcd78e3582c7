"""Design space: edit a space file, sample it, look at the population, open a sample on the Build page.

The space is YAML (``analysis.space.space_file``): the editor and the Samples / Seed fields are two views of the
same text. Sampling (``analysis.space.sample_space``, with progress: ``app.logic.design_space``) keeps the
population in the session; a scatter of it (params, GFLOPs, latency where measured, AP where a folder has results)
opens a clicked sample's config on the Build page, as does the sample picker below it. A population can be saved as
a space folder under the runs folder; two trained folders get their error EDFs overlaid.
"""

from __future__ import annotations

import streamlit as st

from analysis import settings
from app import common
from app.logic import design_space as ds
from hrnet_core import dump_config

ss = st.session_state
BUILD_STATE = ("yaml_text", "build_error")  # the Build page's own state besides its b_* widgets
SAMPLED = "sampled on this page"  # the population picker's entry for what was sampled here


# ---- the space text and its fields ----------------------------------------------------------------


def _sync_fields(text: str) -> None:
    """Show the text's samples and seed in their fields (when they are integers)."""
    for key, field in (("samples", "ds_samples"), ("seed", "ds_seed")):
        value = ds.top_value(text, key)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            ss[field] = value


def _on_text() -> None:
    ss.ds_text = ss.ds_yaml
    _sync_fields(ss.ds_yaml)


def _on_field(key: str, field: str) -> None:
    ss.ds_yaml = ss.ds_text = ds.set_top_value(ss.ds_yaml, key, int(ss[field]))


def _on_reset() -> None:
    ss.ds_yaml = ss.ds_text = ds.DEFAULT_SPACE
    _sync_fields(ds.DEFAULT_SPACE)


def _editor():
    """The editor, its fields and its error line; returns the space (None when the text is invalid)."""
    if "ds_yaml" not in ss:  # a widget not drawn on the last run (another page was open) loses its value
        ss.ds_yaml = ss.get("ds_text", ds.DEFAULT_SPACE)
        _sync_fields(ss.ds_yaml)
    c1, c2, c3 = st.columns([1, 1, 2], vertical_alignment="bottom")
    c1.number_input("Samples", min_value=1, max_value=ds.MAX_APP_SAMPLES, step=1, key="ds_samples",
                    on_change=_on_field, args=("samples", "ds_samples"), help="The space file's samples: key.")
    c2.number_input("Seed", min_value=0, step=1, key="ds_seed", on_change=_on_field, args=("seed", "ds_seed"),
                    help="The space file's seed: key; the same seed draws the same samples.")
    c3.button("Reset", key="ds_reset", on_click=_on_reset, help="Back to the example space.")
    st.text_area("Space file (YAML: name, base, samples, seed, sample, constraints; applied when the box loses "
                 "focus, or Ctrl+Enter)", key="ds_yaml", height=380, on_change=_on_text)
    try:
        return ds.read_space_text(ss.ds_yaml)
    except Exception as err:  # noqa: BLE001 - one line beside the editor
        st.error(f"Invalid space — {common.error_line(err)}")
        return None


def _sample(space) -> None:
    bar = st.progress(0.0, text=f"Sampling {space.samples} configs of {space.name}…")

    def progress(done: int, total: int) -> None:
        bar.progress(done / total, text=f"Sampling {space.name}: {done} of {total} configs")

    try:
        run = ds.sample_with_progress(space, progress)
    except Exception as err:  # noqa: BLE001
        bar.empty()
        st.error(f"Sampling failed — {common.error_line(err)}")
        return
    bar.empty()
    ss.ds_pop = ds.sampled_population(space, ss.ds_yaml, run)
    ss.ds_source = SAMPLED


# ---- the population -------------------------------------------------------------------------------


def _population():
    """The population picked: the one sampled here, or a space folder under the runs folder."""
    folders = {f"folder {p.name}": p for p in ds.space_folders(settings.runs_root())}
    options = ([SAMPLED] if "ds_pop" in ss else []) + list(folders)
    if not options:
        st.caption("Press Sample to draw the space's configs; space folders under "
                   f"{settings.runs_root()} are listed here too.")
        return None
    if ss.get("ds_source") not in options:
        ss.ds_source = options[0]
    c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
    choice = c1.selectbox("Population", options, key="ds_source",
                          help=f"Sampled on this page, or a space folder under {settings.runs_root()}.")
    c2.toggle("Log axes", value=True, key="ds_log")  # AP stays linear
    if choice == SAMPLED:
        return ss.ds_pop
    try:
        return ds.folder_population(folders[choice])
    except Exception as err:  # noqa: BLE001
        st.error(f"Population — {common.error_line(err)}")
        return None


def _pick(label: str, options: dict, key: str, default: str, target):
    keys = list(options)
    if ss.get(key) not in keys:
        ss[key] = default if default in keys else keys[0]
    return target.selectbox(label, keys, key=key, format_func=lambda k: options[k])


def _open_on_build(pop, sid: str) -> None:
    """Make sample ``sid`` the app's current model (origin and all, as a link or an upload would) and go to the
    Build page."""
    cfg = ds.sample_config(pop, sid)
    common.view(cfg)  # refuses a model the builder would refuse
    ss.cfg = cfg
    common.set_origin(cfg, cfg.name, dump_config(cfg), f"design space {pop.name}, sample {sid}")
    for key in [k for k in ss if isinstance(k, str) and (k.startswith("b_") or k in BUILD_STATE)]:
        del ss[key]  # the Build page's widgets are seeded from the new model
    st.switch_page("app/build.py")


def _scatter(pop) -> None:
    axes = ds.axis_options(pop)
    knobs = ds.knob_keys(pop)
    c1, c2, c3 = st.columns(3)
    x = _pick("x axis", axes, "ds_x", "params", c1)
    y = _pick("y axis", axes, "ds_y", "ap" if "ap" in axes else "gflops", c2)
    colour = _pick("Colour by", {k: k for k in knobs}, "ds_colour", knobs[0], c3)
    log = ss.get("ds_log", True)
    data = ds.scatter_data(pop, x, y, colour)
    event = common.chart(ds.scatter_figure(data, log), "ds_scatter", f"{pop.name}_{x}_vs_{y}", on_select="rerun",
                         selection_mode="points")
    sid = ds.selected_id(event.selection.points if event else None)
    if sid is not None and sid != ss.get("ds_clicked"):
        ss.ds_clicked = sid
        _open_on_build(pop, sid)
    ss.ds_clicked = sid  # a selection that ended (or was there on coming back) opens nothing again
    trained = f"; {pop.trained} with an AP" if pop.trained else "; no AP yet (the space is not trained)"
    drawn = f"{len(data.ids)} of {len(pop.samples)} samples" if len(data.ids) != len(pop.samples) else \
        f"{len(pop.samples)} samples"
    draws = f" from {pop.draws} draws (rejected: {pop.rejected})" if pop.draws is not None else ""
    st.caption(f"Space **{pop.name}** ({pop.source}): {drawn}{draws}{trained}. GFLOPs: the paper's, Conv2d + "
               "Linear multiply-adds / 2^30 at batch 1. Hover a point for its id and knob values; click one to open "
               "its config on the Build page, or pick it here:")
    c1, c2 = st.columns([3, 2], vertical_alignment="bottom")
    ids = pop.ids
    if ss.get("ds_open_id") not in ids:
        ss.ds_open_id = ids[0]
    knobs_of = {s["id"]: s["knobs"] for s in pop.samples}
    c1.selectbox("Sample", ids, key="ds_open_id",
                 format_func=lambda i: f"{i} · " + ", ".join(f"{k} {ds.value_text(v)}" for k, v in knobs_of[i].items()))
    if c2.button("Open on Build page", key="ds_open"):
        _open_on_build(pop, ss.ds_open_id)


def _save(pop) -> None:
    if pop.source != "sampled here":
        return
    with st.expander(f"Save as a space folder under {settings.runs_root()}"):
        c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
        ss.setdefault("ds_save_name", pop.name)
        name = c1.text_input("Folder name", key="ds_save_name")
        if c2.button("Save", key="ds_save"):
            try:
                folder = ds.save_population(pop, settings.runs_root(), name.strip())
            except Exception as err:  # noqa: BLE001
                st.error(f"Save — {common.error_line(err)}")
            else:
                st.success(f"Saved {len(pop.samples)} samples to {folder} (space.yaml, samples.jsonl), as "
                           "`hrnet-explorer space sample` writes them.")


def _edfs() -> None:
    st.subheader("Error EDFs of two trained spaces")
    folders = {p.name: p for p in ds.trained_folders(settings.runs_root())}
    if len(folders) < 2:
        st.caption(f"EDFs need trained samples: two space folders under {settings.runs_root()} with results.jsonl "
                   f"(found {len(folders)}).")
    else:
        names = list(folders)
        c1, c2 = st.columns(2)
        a = c1.selectbox("Space A", names, index=0, key="ds_edf_a")
        b = c2.selectbox("Space B", names, index=1, key="ds_edf_b")
        with common.guard("EDFs"):
            cmp = ds.edf_comparison(folders[a], folders[b])
            common.chart(cmp.figure, "ds_edf", f"edf_{a}_vs_{b}")
            ks = (f"KS statistic {cmp.ks['statistic']:.3f}, p = {cmp.ks['p_value']:.3g}" if cmp.ks else
                  "KS needs done samples in both")
            st.caption(f"{cmp.labels[0]}: {cmp.done[0]} done; {cmp.labels[1]}: {cmp.done[1]} done. {ks} "
                       "(scipy.stats.ks_2samp).")
    st.caption("Training a space's samples (`space train`: start, stop, resume) is not built yet; results.jsonl "
               "written by it will give AP axes here.")


st.title("Design space")
st.caption("Sample distinct configs of a network from a design space (Radosavovic et al. 2019, \"On Network Design "
           "Spaces for Visual Recognition\") and compare populations. The same file works with "
           "`hrnet-explorer space sample SPACE.yaml --out DIR`.")
left, right = st.columns([5, 7], gap="large")
with left:
    st.subheader("Space")
    space = _editor()
    if st.button("Sample", key="ds_run", type="primary", disabled=space is None):
        _sample(space)
with right:
    st.subheader("Population")
    pop = _population()
    if pop is not None and pop.samples:
        _scatter(pop)
        _save(pop)
st.divider()
_edfs()
