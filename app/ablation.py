"""Ablation: start a fusion ablation as a detached worker, follow it live, open its report.

The worker outlives reruns, closed tabs and reloads; everything shown here is read from the run
folder (``runs/<name>/`` or ``$HRNET_EXPLORER_RUNS``), so a reload finds the run where it is.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import streamlit as st

from analysis import settings
from analysis.ablation import launch as al
from analysis.ablation import report as rp
from analysis.ablation.compare_runs import CURVES, overlay_figure
from analysis.ablation.effects import effects_table
from analysis.ablation.files import RunFolderError
from analysis.ablation.progress import list_runs, read_progress, run_status, run_summary
from analysis.ablation.recipes import default_recipe, load_recipe
from analysis.ablation.rescore import add_per_joint, jobs_without_joints
from analysis.ablation.run_folder import read_runner_status, read_text_file
from analysis.ablation.runner import resolve_base
from app import common, paths_policy
from app.logic import networks
from app.logic.run_tables import latest_log_line, progress_table, runs_table
from hrnet_core import dump_config

ss = st.session_state
CURRENT = "current config (from Build)"


def _new_name() -> str:
    return time.strftime("fusion-%Y%m%d-%H%M%S")


def _start_form(cfg) -> None:
    if "abl_name" not in ss or ss.pop("abl_renew_name", False):
        ss.abl_name = ss.abl_auto_name = _new_name()
    with st.form("abl_start"):
        st.subheader("Start a run")
        c1, c2, c3 = st.columns(3)
        name = c1.text_input("Run name", key="abl_name")
        base = c2.selectbox("Base config", [CURRENT, *common.config_sources()], key="abl_base")
        variants = c3.text_input("Variants (fusions, or final_only / across_stage / all)", value="1,3,8",
                                 key="abl_variants")
        c1, c2, c3, c4 = st.columns(4)
        data = c1.text_input("Data: builtin, or a COCO-keypoints folder", value="builtin", key="abl_data")
        recipe = c2.selectbox("Recipe", al.RECIPES, index=al.RECIPES.index(default_recipe()), key="abl_recipe",
                              help="cpu: the three variants on a laptop's CPU (built-in data); quick: minutes per "
                                   "variant on one GPU; paper: the official 210-epoch schedule; smoke: a tiny "
                                   "end-to-end check")
        seeds = c3.number_input("Seeds", min_value=1, max_value=100, value=load_recipe(default_recipe()).seeds,
                                key="abl_seeds", help="the default recipe's own seed count (the CLI's default too)")
        devices = common.device_choices()
        device = c4.selectbox("Device", devices, key="abl_device")
        smoke = st.checkbox("Smoke run (tiny model and data, all variants end to end on CPU in under 2 minutes; "
                            "uses the smoke recipe)", key="abl_smoke")
        submitted = st.form_submit_button("Start", key="abl_start_button")
    if "abl_started" in ss:
        st.success(ss.pop("abl_started"))
    if not submitted:
        return
    with common.guard("Not started"):  # a bad field is named here and no worker starts
        base_cfg = cfg if base == CURRENT else common.config_from_source(base)
        if common.not_available(base_cfg, "fusion ablation"):  # another network's model: one line, no worker
            return
        base_text = dump_config(cfg) if base == CURRENT else None
        base_path = "" if base == CURRENT else common.config_sources()[base]
        data = data.strip()
        if data not in ("", "builtin", "coco"):  # a server folder: only inside the folders the app may read
            data = str(paths_policy.server_data_folder(data, paths_policy.data_roots()))
        request = al.AblationRequest(name=name.strip(), base=base_path, variants=variants.strip(), data=data,
                                     recipe="smoke" if smoke else recipe, seeds=int(seeds), device=device,
                                     smoke=smoke)
        if request.name == ss.get("abl_auto_name"):  # the name was not typed: one that says what runs
            recipe_name = "smoke" if smoke else recipe
            sized = resolve_base(base_cfg, load_recipe(recipe_name)).name
            request = replace(request, name=al.run_name(sized, recipe_name, smoke))
        info = al.launch(request, base_text=base_text)
        ss.abl_pick = Path(info.run_dir).name
        ss.abl_renew_name = True  # the next run gets a fresh default name
        ss.abl_started = f"Started {Path(info.run_dir).name} (worker pid {info.pid}); log: {info.log}"
        st.rerun()


BADGES = {"preparing": ":blue[preparing]", "running": ":blue[running]", "done": ":green[finished]",
          "failed": ":red[failed]", "stopped": ":orange[stopped]", "queued": ":gray[queued]"}


def _read_progress(run_dir: Path):
    """``(progress, status)`` of ``run_dir``; ``progress`` is None when its request cannot be read (the
    status is then failed with that one-line reason, and the run can still be deleted)."""
    try:
        progress = read_progress(run_dir)
    except RunFolderError:
        return None, run_status(run_dir)
    return progress, run_status(run_dir, progress)


def _progress_view(run_dir: Path) -> None:
    al.worker_status(run_dir)  # reaps a worker of this session that has ended
    progress, status = _read_progress(run_dir)
    phase = f" · {status.phase}" if status.phase else ""
    pid = f" (pid {status.pid})" if status.pid and status.state in ("preparing", "running") else ""
    st.container(key="abl_status").markdown(f"**{run_dir.name}** — {BADGES.get(status.state, status.state)}{phase}{pid}")
    if status.state == "failed":
        st.error(f"The run failed: {status.reason or 'see the worker log'}")
    elif status.state == "stopped":
        st.warning("The run was stopped; resume it to continue from the last complete epoch.")
    if progress is not None and (progress.empty or status.state == "preparing"):  # None: the reason is above
        if status.state == "preparing":
            last = latest_log_line(al.log_tail(run_dir, 20))
            st.caption("No progress recorded yet: the worker is preparing the data and models"
                       + (f" — {last}" if last else "."))
    if progress is not None and not progress.empty:
        runner, _problem = read_runner_status(run_dir)
        st.container(key="abl_run_summary").caption(run_summary(progress, int(runner.get("parallel_jobs") or 1)).text())
        for _, row in progress[(progress["state"] == "failed") & progress["error"].notna()].iterrows():
            st.error(f"{row['variant']} seed {row['seed']}: {row['error']}")
        st.dataframe(progress_table(progress), hide_index=True, width="stretch",
                     column_config={"progress": st.column_config.ProgressColumn("progress", min_value=0.0,
                                                                                max_value=1.0, format="percent"),
                                    "ETA": st.column_config.TextColumn("ETA", width="medium")})
    live = status.state in ("preparing", "running")
    c1, c2, c3 = st.columns(3)
    if live and c1.button("Stop the run", key="abl_stop"):
        al.stop(run_dir)
        st.rerun()
    if status.state in ("failed", "stopped") and c2.button("Resume the run", key="abl_resume"):
        with common.guard("resume"):
            al.resume(run_dir)
            st.rerun()
    if not live and c3.button("Delete the run…", key="abl_delete"):
        ss.abl_confirm_delete = run_dir.name
    if ss.get("abl_confirm_delete") == run_dir.name and not live:
        _confirm_delete(run_dir)
    with st.expander("Worker log (last lines)"):
        st.code(al.log_tail(run_dir, 40) or "(empty)", language=None)


def _confirm_delete(run_dir: Path) -> None:
    st.warning(f"Delete {run_dir} with its checkpoints, metrics and report? This cannot be undone.")
    c1, c2 = st.columns(2)
    if c1.button(f"Yes, delete {run_dir.name}", key="abl_delete_yes", type="primary"):
        ss.pop("abl_confirm_delete", None)
        with common.guard("delete"):
            al.delete_run(run_dir)
            ss.abl_deleted = f"Deleted {run_dir.name}."
            ss.pop("abl_pick", None)
            st.rerun()
    if c2.button("Cancel", key="abl_delete_no"):
        ss.pop("abl_confirm_delete", None)
        st.rerun()


def _joint_view(run_dir: Path, metrics) -> None:
    st.markdown("**Per joint**")
    st.caption(rp.JOINT_INTRO)
    metric = st.segmented_control("Per-joint metric", ["AP", "PCK@0.1"], default="AP", key="abl_joint_metric")
    table = rp.run_joint_table(run_dir, metrics=metrics, metric="PCK@0.1" if metric == "PCK@0.1" else "AP")
    st.dataframe(rp.joint_display(table), hide_index=True, width="stretch", height=35 * (len(table) + 1) + 3,
                 key="abl_joints")


def _add_joints(run_dir: Path) -> None:
    """Jobs that finished before per-joint figures were recorded: say so, and offer to evaluate them now (nothing
    while no job has finished: its last epoch records them)."""
    todo = jobs_without_joints(run_dir)
    if not todo:
        return
    st.caption(rp.NO_JOINTS)
    if st.button(f"Add per-joint figures (evaluates the last.pth of {len(todo)} finished job"
                          f"{'s' if len(todo) != 1 else ''} on the run's validation set)", key="abl_add_joints"):
        with common.guard("per-joint figures"), st.spinner("Evaluating each joint…"):
            add_per_joint(run_dir, log=lambda _line: None)
            if (run_dir / "report.md").is_file():
                rp.write_report(run_dir)  # the files say what the page says
            st.rerun()


def _compare_runs(run_dir: Path, runs) -> None:
    """Another run's curves over this one's (``analysis.ablation.compare_runs``); ``runs``: the page's
    ``list_runs`` table."""
    others = [r for r in runs.itertuples() if r.name != run_dir.name and
              (Path(r.path) / "ablation.json").is_file()]
    if not others:
        st.caption("Compare with another run: no other run in the runs folder yet.")
        return
    c1, c2 = st.columns([3, 1])
    names = {r.name: Path(r.path) for r in others}
    other = c1.selectbox("Compare with another run (its curves dashed over this run's)", list(names), index=None,
                         key="abl_compare", placeholder="pick a run")
    key = c2.selectbox("Metric", list(CURVES), key="abl_compare_metric")
    if other is not None:
        with common.guard("comparison"):
            common.chart(overlay_figure(run_dir, names[other], key), "abl_overlay",
                         f"{run_dir.name}_vs_{other}_{key.replace('@', '_')}")


def _report_view(run_dir: Path, runs) -> None:
    st.subheader("Report")
    if not (run_dir / "ablation.json").is_file():
        st.caption("No report: the run has not recorded its request yet.")
        return
    metrics = rp.load_metrics(run_dir)
    summary = rp.load_summary(run_dir, metrics)
    paper, _ = rp.run_paper_table(run_dir)
    table = rp.display_table(summary, paper)
    # a static table: every row, column and header whole (headers wrap), as an appendix prints it; the data
    # grid cut 14 columns' headers to fit the page
    # st.table reads its cells as Markdown: a lone "-" (no figure) would be drawn as a list bullet
    st.container(key="abl_summary").table(table.map(lambda v: "\\-" if v == "-" else v), hide_index=True)
    effects = rp.run_effects(run_dir, metrics=metrics)
    if effects:
        st.markdown("**Effect of fusion** (paired over seeds)")
        st.caption(rp.EFFECT_INTRO)
        st.markdown("\n".join(f"- {e.verdict}" for e in effects))
        st.dataframe(effects_table(effects), hide_index=True, width="stretch", key="abl_effects")
    if metrics.empty:  # empty axes say nothing: the figures come with the first epoch
        st.caption("No epoch has finished yet: the curves and figures appear once one has.")
        figs = {}
    else:
        figs = rp.figures(metrics, summary, rp.run_joint_table(run_dir, metrics=metrics))
    for stem, fig in figs.items():
        if stem == "per_joint_ap":
            _joint_view(run_dir, metrics)
        fig.update_layout(height=380, margin=dict(l=10, r=10, t=50, b=10))
        common.chart(fig, f"abl_fig_{stem}", f"{run_dir.name}_{stem}")
    if "per_joint_ap" not in figs and not metrics.empty:
        _add_joints(run_dir)
    _compare_runs(run_dir, runs)
    md = run_dir / "report.md"
    if md.is_file():
        text = read_text_file(md)  # bounded; a damaged file is one error line (the guard), never a traceback
        with st.expander("report.md (with the paper's table and how this run differs from it)"):
            st.markdown(text or "")
    c = st.columns(5)
    if c[0].button("Rewrite the report files" if md.is_file() else "Write the report files", key="abl_write"):
        with common.guard("report"), st.spinner("Writing the report…"):
            rp.write_report(run_dir)
            st.rerun()
    for col, name, mime in zip(c[1:], ("report.html", "report.md", "summary.csv", "summary.json"),
                               ("text/html", "text/markdown", "text/csv", "application/json")):
        path = run_dir / name
        if path.is_file():
            col.download_button(f"Download {name}", data=lambda path=path: path.read_bytes(), mime=mime,
                                file_name=f"{run_dir.name}_{name}", key=f"abl_dl_{name}", on_click="ignore")


def _runs() -> None:
    st.subheader("Runs")
    root = settings.runs_root()
    runs = list_runs(root)  # also the runs launched here that have not written their request yet
    if "abl_deleted" in ss:
        st.success(ss.pop("abl_deleted"))
    if runs.empty:
        st.caption(f"No runs in {root} yet.")
        return
    st.dataframe(runs_table(runs), hide_index=True, width="stretch")
    names = list(runs["name"])
    if ss.get("abl_pick") not in names:
        ss.abl_pick = names[0]
    name = st.selectbox("Open run", names, key="abl_pick")
    run_dir = (root / name).resolve()
    running = runs.loc[runs["name"] == name, "state"].iloc[0] in ("preparing", "running")

    @st.fragment(run_every=2.0 if running else None)
    def live():
        _progress_view(run_dir)
        if running and run_status(run_dir).state not in ("preparing", "running"):
            st.rerun()  # ended: redraw the whole page (report, run list) once

    live()
    with common.guard("report"):
        _report_view(run_dir, runs)


st.title("Ablation")
st.caption("The paper's fusion study (1 / 3 / 8 exchange units, section 4.4) rerun on any base config. "
           f"Runs are folders under {settings.runs_root()}; they keep going if this tab is closed or reloaded.")
cfg = common.current_config()
unavailable = networks.unavailable(cfg, "fusion ablation")
if unavailable:  # the current model cannot be the base; an HRNet preset can
    st.caption(f"{unavailable} Pick a base config whose modules can switch their fusion (HRNet, Lite-HRNet) to start "
               "a run; the runs below are unaffected.")
_start_form(cfg)
st.divider()
with common.guard("runs"):
    _runs()
