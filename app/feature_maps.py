"""Feature maps: what every module computes on each resolution branch for a real photograph or a run's
validation person, and the head's output — untrained, with an official checkpoint or one from an
ablation run (then the page, header and sidebar describe that checkpoint's own model)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections import OrderedDict
from pathlib import Path

import plotly.express as px
import streamlit as st

from analysis.ablation.progress import checkpoint_config, checkpoint_run_dir, list_runs, run_checkpoints
from analysis.features import render as fr
from analysis.features import val_pose
from analysis.features.capture import capture
from analysis.features.weights import checkpoint_meta, describe_checkpoint
from analysis.imaging.images import BUNDLED, load_image
from analysis.settings import runs_root
from app import common, paths_policy
from app.logic import checkpoint_help, networks
from app.logic.messages import name_upload
from app.logic.run_progress import forward_progress
from hrnet_core import CheckpointError, UserInputError, dump_config
from hrnet_core.device import device_label, resolve_device

ss = st.session_state
UPLOAD = "upload an image…"
VAL = "a run's validation person (by index)…"
UNTRAINED = "none (untrained network)"
CK_RUN = "a run's checkpoint (run / variant / seed)…"
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


CAPTURES_KEPT = 4


@st.cache_resource(show_spinner=False)
def _captures() -> tuple[threading.Lock, OrderedDict]:
    """The last ``CAPTURES_KEPT`` captures, shared by sessions (they hold megabytes of maps that pages only read).
    Not an ``st.cache_resource`` of the capture itself: its progress bar is drawn while it runs, which a cached
    function may not do."""
    return threading.Lock(), OrderedDict()


def _capture(key: str, cfg, image, box, device: str, checkpoint_key: str, checkpoint: str | None, report=None):
    lock, kept = _captures()
    full = (key, box, device, checkpoint_key)
    with lock:
        if full in kept:
            kept.move_to_end(full)
            return kept[full]
    model, status = common.model(cfg, device, checkpoint)
    with forward_progress(model, report) if report else contextlib.nullcontext():
        out = capture(model, cfg, image, device=device, box=box), status
    with lock:
        kept[full] = out
        while len(kept) > CAPTURES_KEPT:
            kept.popitem(last=False)
    return out


def _run(key: str, run_cfg, image, box, dev, ck_key: str, checkpoint: str | None):
    """The capture with a progress bar and a Cancel button; ``None`` when cancelled. Pressing Cancel (or any
    input) makes Streamlit stop this script at the bar's next update, inside the forward pass."""
    if ss.get("f_cancelled") == key:
        st.info(f"Feature-map run of {run_cfg.name} cancelled.")
        if st.button("Run again", key="f_run_again"):
            ss.pop("f_cancelled", None)
            st.rerun()
        return None
    slot = st.empty()
    with slot.container():
        c1, c2 = st.columns([5, 1])
        bar = c1.progress(0.0, text=f"Building {run_cfg.name} on {device_label(dev)}…")
        if c2.button("Cancel", key="f_cancel", on_click=lambda: ss.update(f_cancelled=key)):
            return None

    def report(fraction: float) -> None:
        bar.progress(fraction, text=f"Forward pass of {run_cfg.name} on {device_label(dev)}: {100 * fraction:.0f} % "
                                    "of the layers" + (" (then reducing the maps)" if fraction >= 1 else ""))

    try:
        out = _capture(key, run_cfg, image, box, str(dev), ck_key, checkpoint, report)
    finally:  # a refused checkpoint leaves no bar behind
        slot.empty()
    return out


@st.cache_data(max_entries=16, show_spinner=False)
def _val_persons(root: str, input_hw: tuple[int, int], mtime: float):
    return val_pose.val_persons(root, input_hw)


@st.cache_data(max_entries=32, show_spinner=False)
def _meta(path: str, mtime: float) -> dict:
    return checkpoint_meta(path)


def _pick_run_checkpoint():
    """``(path, label)`` of the run / variant / seed / best-or-last chosen, or None when there is none."""
    df = run_checkpoints(runs_root())
    if df.empty:
        st.info(f"No run checkpoints under {runs_root()} yet: start a run on the Ablation page.")
        return None
    c1, c2, c3, c4 = st.columns(4)
    run = c1.selectbox("Run", list(dict.fromkeys(df["run"])), key="f_run")
    df = df[df["run"] == run]
    variant = c2.selectbox("Variant", list(dict.fromkeys(df["variant"])), key="f_variant")
    df = df[df["variant"] == variant]
    seed = c3.selectbox("Seed", [int(s) for s in dict.fromkeys(df["seed"])], key="f_seed")
    df = df[df["seed"] == seed]
    which = c4.selectbox("Checkpoint", list(df["which"]), key="f_which",
                         help="best.pth: the epoch with the best validation AP; last.pth: the latest epoch")
    return df[df["which"] == which]["path"].iloc[0], f"{run}/{variant}/seed{seed}/{which}.pth"


def _weights():
    """``(checkpoint path or None, label)`` from the weights picker."""
    choice = st.selectbox("Weights", [UNTRAINED, CK_RUN, CK_UPLOAD, CK_PATH], key="f_ck")
    if choice == CK_RUN:
        return _pick_run_checkpoint() or (None, "")
    if choice == CK_UPLOAD:
        up = st.file_uploader("Checkpoint (.pth, .pth.tar, .safetensors)", key="f_ck_upload")
        if up is not None:
            path = _stash_upload(up, "".join(Path(up.name).suffixes[-2:]) or ".pth")
            ss.f_stand_ins[path] = up.name
            return path, up.name
    elif choice == CK_PATH:
        path = st.text_input("Path", key="f_ck_path", placeholder="/path/to/pose_hrnet_w32_256x192.pth").strip()
        if path:  # only inside the runs folder and configured folders; same words for missing and forbidden
            return str(paths_policy.server_checkpoint(path, paths_policy.allowed_roots(runs_root()))), path
    return None, ""


def _val_person(cfg, checkpoint: str | None, column):
    """``(record, index, count, run name)`` of the validation person chosen, from the checkpoint's run or one picked."""
    run_dir = checkpoint_run_dir(checkpoint) if checkpoint else None
    if run_dir is None:
        runs = list_runs(runs_root())
        if runs.empty:
            column.info(f"No runs under {runs_root()}: their validation images come with a run.")
            return None
        name = column.selectbox("Dataset of run", list(runs["name"]), key="f_val_run")
        run_dir = Path(runs.loc[runs["name"] == name, "path"].iloc[0])
    root = val_pose.run_data_root(run_dir)
    ann = root / "annotations" / f"person_keypoints_{val_pose.SPLIT}.json"
    records = _val_persons(str(root), tuple(cfg.input_hw), os.path.getmtime(ann) if ann.is_file() else 0.0)
    index = column.number_input(f"Validation person (0..{len(records) - 1})", 0, len(records) - 1, 0,
                                key="f_val_index")
    return val_pose.pick(records, int(index)), int(index), len(records), run_dir.name


def _inputs(cfg):
    w1, w2 = st.columns([1.6, 2.4])
    with w1:
        checkpoint, ck_label = _weights()
    if checkpoint and not Path(checkpoint).is_file():
        raise CheckpointError(f"{checkpoint}: no such checkpoint file")
    run_cfg, where = checkpoint_config(checkpoint) if checkpoint else (None, None)
    cfg = run_cfg or cfg

    c1, c2, c3 = st.columns([1.2, 1.6, 0.8])
    names = list(BUNDLED)
    choice = c1.selectbox("Image", [*names, VAL, UPLOAD], key="f_image",
                          index=names.index(ss.image_name) if ss.get("image_name") in names else 0,
                          format_func=lambda n: f"{n} — {BUNDLED[n].description}" if n in BUNDLED else n)
    image, image_key, box, person = choice, choice, None, None
    if choice == UPLOAD:
        upload = c1.file_uploader("PNG, JPEG, BMP, TIFF or WebP", type=["png", "jpg", "jpeg", "bmp", "tif", "tiff",
                                                                        "webp"], key="f_upload")
        if upload is None:
            st.info("Upload an image to see its feature maps.")
            image = None
        else:
            image = upload.getvalue()
            image_key = "upload:" + hashlib.sha1(image).hexdigest()
            ss.f_stand_ins["<upload>"] = upload.name
    elif choice == VAL:
        person = _val_person(cfg, checkpoint, c2)
        image = None
        if person is not None:
            rec = person[0]
            image, box = rec.image, rec.box
            image_key = f"val:{rec.image}:{rec.ann_id}"
    else:
        ss.image_name = choice
    devices = common.device_choices()
    device = c3.selectbox("Device", devices, key="f_device", help=f"auto = {device_label(resolve_device('auto'))}")
    return cfg, where, checkpoint, ck_label, image, image_key, box, person, device


def _header(header, cfg, checkpoint: str | None, ck_label: str, where) -> None:
    with header.container():
        if checkpoint:
            meta = _meta(checkpoint, os.path.getmtime(checkpoint))
            about = describe_checkpoint(meta)
            source = f"Checkpoint {ck_label}" + (f" ({about})" if about else "")
            st.markdown(f"{source} — model: " + common.model_caption(cfg))
            if where is not None:
                st.caption(f"Using the run's own config ({where}) so its checkpoint fits.")
            note = checkpoint_help.quality_note(meta)
            if note:
                st.warning(note)
            common.show_model(cfg, f"Model of checkpoint {ck_label}")
        else:
            st.markdown(common.model_caption(cfg))
            st.warning("**Untrained network** (PyTorch's default initialisation, seed 0): the maps show what the "
                       "architecture does to the image, not learned features, and any prediction is random. Choose "
                       "a run's checkpoint under Weights to see a trained one.")


def _use_inferred(cfg, ck_label: str) -> None:
    ss.cfg = cfg
    common.set_origin(cfg, cfg.name, dump_config(cfg), f"inferred from checkpoint {ck_label}")


def _refused(header, cfg, checkpoint: str, ck_label: str, err: CheckpointError) -> None:
    """A checkpoint that did not load: the header back to the current model (it is not the checkpoint's), the one
    error line, and the config its weights describe when that is another one."""
    ss.pop(common.SHOWN_KEY, None)  # the sidebar, too, describes the current model again
    with header.container():
        st.markdown(common.model_caption(cfg))
    st.error(common.error_line(err))
    offer = checkpoint_help.inferred_offer(checkpoint, cfg)
    if offer is not None:
        st.info(offer.line)
        st.button(f"Use {offer.cfg.name} (the config of these weights)", key="f_use_inferred",
                  on_click=_use_inferred, args=(offer.cfg, ck_label))


def _ground_truth_vs_prediction(cap, person, cfg) -> None:
    rec, index, count, run = person
    st.subheader(f"Validation person {index} of {count} (run {run})")
    head = cap.head
    if head.kind != "heatmaps" or head.maps is None or head.maps.shape[0] != 17:
        st.info("Ground truth vs prediction needs a 17-joint COCO pose head.")
        return
    pred = val_pose.predict_person(head.maps, rec)
    joints = pred.joints()
    x, y, w, h = rec.box
    c1, c2 = st.columns([1.3, 1])
    c1.image(val_pose.draw_comparison(load_image(rec.image), pred, cfg.input_hw),
             caption=f"{Path(rec.image).name}, person box (x, y, w, h) = ({x:.0f}, {y:.0f}, {w:.0f}, {h:.0f}) in "
                     "green; left joints blue, right orange; predicted joints under 0.2 confidence hollow",
             width="stretch")
    m1, m2, m3 = c2.columns(3)
    m1.metric("PCK@0.1 (this person)", f"{100 * pred.metrics['PCK@0.1']:.0f} %")
    m2.metric("Mean confidence", f"{pred.mean_confidence:.2f}")
    m3.metric("Labelled joints", f"{int(joints['labelled'].sum())} of {len(joints)}")
    fig = px.bar(joints, x="joint", y="confidence", color="within_0.1", height=300,
                 color_discrete_map={True: "#2ca02c", False: "#d62728"},
                 title="Per-joint confidence (heatmap maximum); green: within PCK@0.1 of the truth")
    fig.update_layout(margin=dict(l=10, r=10, t=40, b=10), legend_title_text="within 0.1")
    common.chart(fig, "f_val_conf", "joint_confidence", c2)
    common.show_table(joints.round(3), c2, height=250)


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
        if y == "energy":  # labels at the decades only: plotly's minor "2" and "5" read as values
            fig.update_yaxes(dtick=1, tickformat=".0e", title="energy (mean L2 per position)")
        else:
            fig.update_yaxes(title="sparsity (fraction of zeros)")
        common.chart(fig, f"f_stats_{y}", f"feature_{y}", col)
    common.show_table(df.drop(columns=["order"]))
    st.download_button("Download stats.csv", df.drop(columns=["order"]).to_csv(index=False).encode(),
                       file_name=f"{cap.config_name}_stats.csv", mime="text/csv", key="f_stats_csv")


@contextlib.contextmanager
def _named_uploads():
    """Errors about an uploaded file name it by its own name (``app.logic.messages.name_upload``)."""
    try:
        yield
    except UserInputError as err:
        raise name_upload(err, ss.get("f_stand_ins", {})) from None


cfg = common.current_config()
st.title("Feature maps")
header = st.empty()
ss.f_stand_ins = {}  # temporary names of this run's uploads -> their own names, for error messages
if networks.unavailable(cfg, "feature maps"):  # another network whose maps are not captured yet: one line
    header.markdown(common.model_caption(cfg))
    common.not_available(cfg, "feature maps")
else:
    with common.guard("feature maps"), _named_uploads():
        run_cfg, where, checkpoint, ck_label, image, image_key, box, person, device = _inputs(cfg)
        _header(header, run_cfg, checkpoint, ck_label, where)
        if image is not None:
            dev = resolve_device(device)
            ck_key = f"{checkpoint}:{Path(checkpoint).stat().st_mtime}" if checkpoint else ""
            try:
                result = _run(f"{common.key_of(run_cfg)}|{image_key}", run_cfg, image, box, dev, ck_key, checkpoint)
            except CheckpointError as err:
                _refused(header, run_cfg, checkpoint, ck_label, err)
                result = None
            if result is not None:  # None: cancelled (the sidebar below is still drawn)
                cap, status = result
                t = cap.timings
                st.caption(f"Device: **{cap.device}** · weights: {status} · load {1e3 * t.get('load_s', 0):.0f} ms, "
                           f"forward {1e3 * t.get('forward_s', 0):.0f} ms, reduce {1e3 * t.get('reduce_s', 0):.0f} ms")
                if person is not None:
                    _ground_truth_vs_prediction(cap, person, run_cfg)
                left, right = st.columns([1, 2], gap="large")
                with left:
                    st.image(cap.image, caption=f"The network's input ({cap.input_hw[0]}x{cap.input_hw[1]}, official "
                                                "preprocessing)", width="stretch")
                    _head(cap)
                with right:
                    _maps(cap)
                _stats(cap)
