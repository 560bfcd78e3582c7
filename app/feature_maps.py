"""Feature maps: what every module computes on each resolution branch for a real photograph, and the
head's output — with random weights, an official checkpoint or one from an ablation run."""

from __future__ import annotations

import hashlib
from pathlib import Path

import plotly.express as px
import streamlit as st

from analysis import features_render as fr
from analysis.ablation.progress import checkpoint_config, list_checkpoints
from analysis.ablation_launch import runs_root
from analysis.features import capture
from analysis.images import BUNDLED
from app import common, paths_policy
from hrnet_core import CheckpointError
from hrnet_core.device import device_label, resolve_device

ss = st.session_state
UPLOAD = "upload an image…"
RANDOM = "none (random weights, official initialisation)"
CK_UPLOAD = "upload a checkpoint…"
CK_PATH = "a checkpoint file on this machine…"


def _stash_upload(upload, suffix: str) -> str:
    """An uploaded checkpoint written once per session to a temporary file (``load_checkpoint`` reads paths);
    deleted when the session ends or after ``paths_policy.UPLOAD_MAX_AGE_S`` (``app.paths_policy``)."""
    data = upload.getvalue()
    digest = hashlib.sha1(data).hexdigest()
    lease = ss.get("f_ck_lease")
    if lease is None or lease[0] != digest or not lease[1].path.is_file():
        ss.f_ck_lease = lease = (digest, paths_policy.stash_upload(data, suffix))
    return str(lease[1].path)


@st.cache_resource(max_entries=4, show_spinner=False)
def _capture(key: str, _cfg, _image, device: str, checkpoint_key: str, _checkpoint: str | None):
    # cache_resource, not cache_data: a capture holds megabytes of maps that pages only read.
    model, status = common.model(_cfg, device, _checkpoint)
    return capture(model, _cfg, _image, device=device), status


def _inputs(cfg):
    c1, c2, c3 = st.columns([1.2, 1.6, 0.8])
    names = list(BUNDLED)
    choice = c1.selectbox("Image", [*names, UPLOAD], key="f_image",
                          index=names.index(ss.image_name) if ss.get("image_name") in names else 0,
                          format_func=lambda n: f"{n} — {BUNDLED[n].description}" if n in BUNDLED else n)
    image, image_key = choice, choice
    if choice == UPLOAD:
        upload = c1.file_uploader("PNG, JPEG, BMP, TIFF or WebP", type=["png", "jpg", "jpeg", "bmp", "tif", "tiff",
                                                                        "webp"], key="f_upload")
        if upload is None:
            st.info("Upload an image to see its feature maps.")
            return None
        image = upload.getvalue()
        image_key = "upload:" + hashlib.sha1(image).hexdigest()
    else:
        ss.image_name = choice

    runs = list_checkpoints(runs_root())
    ck_choice = c2.selectbox("Checkpoint", [RANDOM, *runs, CK_UPLOAD, CK_PATH], key="f_ck")
    checkpoint = None
    if ck_choice in runs:
        checkpoint = runs[ck_choice]
    elif ck_choice == CK_UPLOAD:
        up = c2.file_uploader("Checkpoint (.pth, .pth.tar, .safetensors)", key="f_ck_upload")
        if up is not None:
            checkpoint = _stash_upload(up, "".join(Path(up.name).suffixes[-2:]) or ".pth")
    elif ck_choice == CK_PATH:
        path = c2.text_input("Path", key="f_ck_path", placeholder="/path/to/pose_hrnet_w32_256x192.pth")
        checkpoint = str(paths_policy.server_checkpoint(path, paths_policy.allowed_roots(runs_root()))) \
            if path.strip() else None
    if checkpoint and ck_choice in runs:
        run_cfg, where = checkpoint_config(checkpoint)
        if run_cfg is not None:
            cfg = run_cfg
            st.caption(f"Using the run's own config ({where}) so its checkpoint fits.")
    devices = common.device_choices()
    device = c3.selectbox("Device", devices, key="f_device", help=f"auto = {device_label(resolve_device('auto'))}")
    return cfg, image, image_key, checkpoint, device


def _head(cap) -> None:
    figs = fr.render_head(cap)
    head = cap.head
    shapes = ", ".join("x".join(map(str, s)) for s in head.shapes)
    st.markdown(f"**Head output** ({cap.head_kind}: {shapes})")
    if head.kind == "heatmaps":
        st.image(figs["keypoints"], caption="argmax of each heatmap", width="stretch")
        st.image(figs["heatmaps"], caption="one heatmap per joint (each on its own scale)", width="stretch")
    else:
        for name in [n for n in figs if not n.startswith(("joint_", "level"))]:
            st.image(figs[name], caption=name.replace("_", " "), width="stretch")


def _maps(cap) -> None:
    modules = cap.modules
    widest = max(len(cap.module_branches(m)) for m in modules)
    default = [m for m in modules if len(cap.module_branches(m)) == widest][-1]  # the last with every branch
    module = st.select_slider("Module (forward order)", modules, value=default, key=f"f_module_{len(modules)}")
    display = fr.cell_hw(cap.input_hw, 176)
    st.image(fr.render_module(cap, module, display),
             caption="Each branch at the same display size, so a 1/32 map shows as 8x8 blocks of the 1/4 grid")
    branches = cap.module_branches(module)
    tabs = st.tabs([f"branch {b.branch} · {b.resolution}" for b in branches])
    for tab, b in zip(tabs, branches):
        with tab:
            c1, c2 = st.columns([2, 1])
            c1.image(fr.render_panel(b, fr.cell_hw(cap.input_hw)))
            c2.image(fr.render_overlay(cap, b.key), caption="L2 energy over the image", width="stretch")
    with st.expander("All modules, resolutions side by side"):
        for m in modules:
            st.image(fr.render_module(cap, m, display))


def _stats(cap) -> None:
    df = cap.stats()
    st.markdown("**Statistics per module and branch**")
    order = {m: i for i, m in enumerate(cap.modules)}
    df = df.assign(order=df["module"].map(order))
    c1, c2 = st.columns(2)
    for col, y in ((c1, "energy"), (c2, "sparsity")):
        fig = px.line(df.sort_values("order"), x="module", y=y, color="resolution", markers=True, height=300,
                      log_y=y == "energy",
                      title=f"{y} per module, by branch resolution")
        fig.update_layout(margin=dict(l=10, r=10, t=40, b=10))
        col.plotly_chart(fig, width="stretch", key=f"f_stats_{y}")
    st.dataframe(df.drop(columns=["order"]), hide_index=True, width="stretch")
    st.download_button("Download stats.csv", df.drop(columns=["order"]).to_csv(index=False).encode(),
                       file_name=f"{cap.config_name}_stats.csv", mime="text/csv", key="f_stats_csv")


cfg = common.current_config()
st.title("Feature maps")
st.markdown(common.model_caption(cfg))
with common.guard("feature maps"):
    chosen = _inputs(cfg)
    if chosen is not None:
        run_cfg, image, image_key, checkpoint, device = chosen
        dev = resolve_device(device)
        if checkpoint and not Path(checkpoint).is_file():
            raise CheckpointError(f"{checkpoint}: no such checkpoint file")
        ck_key = f"{checkpoint}:{Path(checkpoint).stat().st_mtime}" if checkpoint else ""
        with st.spinner(f"Running {run_cfg.name} on {device_label(dev)}…"):
            cap, status = _capture(f"{common.key_of(run_cfg)}|{image_key}", run_cfg, image, str(dev), ck_key,
                                   checkpoint)
        t = cap.timings
        st.caption(f"Device: **{cap.device}** · weights: {status} · load {1e3 * t.get('load_s', 0):.0f} ms, "
                   f"forward {1e3 * t.get('forward_s', 0):.0f} ms, reduce {1e3 * t.get('reduce_s', 0):.0f} ms")
        left, right = st.columns([1, 2], gap="large")
        with left:
            st.image(cap.image, caption=f"The network's input ({cap.input_hw[0]}x{cap.input_hw[1]}, official "
                                        "preprocessing)", width="stretch")
            _head(cap)
        with right:
            _maps(cap)
        _stats(cap)
