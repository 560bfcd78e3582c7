"""Published vs computed: beside our counts, each preset's published params / GFLOPs in the convention its source
used, ours in that same convention, and the reason for any difference.

The figures are read where they are kept, never copied here: the official HRNet READMEs' tables and text as
``../shared/model_zoo.md`` records them (pose, classification, segmentation, face), the mmpose family table of
``../shared/README.md`` (Lite-HRNet-18, HRFormer-S). The HigherHRNet README's figures are not in ``../shared``;
they are the three rows below (``HIGHERHRNET_README``), which the README's HigherHRNet table repeats (a test
keeps the two equal). Only the preset -> published row identification lives in this module.

``published_vs_computed(cfg)`` returns a DataFrame, one row per published figure: ``quantity`` (params /
GFLOPs), ``published`` (as printed), ``ours`` (our count in the published convention, at the published input),
``convention``, ``input (H x W)``, ``matches`` (ours shown at the published precision equals it), ``source``,
``why`` (the reason where they differ, or what the convention means). Empty (with a reason,
``PublishedComparison.note``) for a config that is not an unedited preset with a published row, or when
``../shared`` is missing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from analysis.complexity.analytic import analyze
from analysis.settings import PRESET_DIR, shared_dir
from hrnet_core.loader import load_config

# preset -> (model_zoo.md section, "model" column, "input (H x W)" column or None); identification only
MODEL_ZOO_ROWS = {
    "pose_hrnet_w32_256x192": ("Pose", "pose_hrnet_w32", "256 x 192"),
    "pose_hrnet_w32_384x288": ("Pose", "pose_hrnet_w32", "384 x 288"),
    "pose_hrnet_w48_256x192": ("Pose", "pose_hrnet_w48", "256 x 192"),
    "pose_hrnet_w48_384x288": ("Pose", "pose_hrnet_w48", "384 x 288"),
    "ablation_pose_w32_fusion8": ("Pose", "pose_hrnet_w32", "256 x 192"),
    "mpii_hrnet_w32_256x256": ("Pose", "pose_hrnet_w32 (MPII, 16 joints)", "256 x 256"),
    "cls_hrnet_w18_small_v1": ("Classification", "HRNet-W18-C-Small-v1", None),
    "cls_hrnet_w18_small_v2": ("Classification", "HRNet-W18-C-Small-v2", None),
    "cls_hrnet_w18": ("Classification", "HRNet-W18-C", None),
    "cls_hrnet_w30": ("Classification", "HRNet-W30-C", None),
    "cls_hrnet_w32": ("Classification", "HRNet-W32-C", None),
    "cls_hrnet_w40": ("Classification", "HRNet-W40-C", None),
    "cls_hrnet_w44": ("Classification", "HRNet-W44-C", None),
    "cls_hrnet_w48": ("Classification", "HRNet-W48-C", None),
    "cls_hrnet_w64": ("Classification", "HRNet-W64-C", None),
    "seg_hrnetv2_w18_small_v1": ("Segmentation", "HRNetV2-W18-Small-v1", None),
    "seg_hrnetv2_w18_small_v2": ("Segmentation", "HRNetV2-W18-Small-v2", None),
    "seg_hrnetv2_w48": ("Segmentation", "HRNetV2-W48", None),
}
SEG_INPUT = (1024, 2048)  # model_zoo.md: the Cityscapes figures are measured at 1024 x 2048
# model_zoo.md says these README params figures do not match the official code; the presets reproduce the code
CODE_DIFFERS = {
    "seg_hrnetv2_w48": "the README's 65.8M came from a summary that skipped the InPlaceABNSync norm layers' "
                       "parameters; the official code builds 65,859,379 (model_zoo.md), as this preset does",
    "face_hrnetv2_w18_wflw": "the README's 9.3M does not match its own code: the official code builds 9,662,528 "
                             "with 98 WFLW landmarks (model_zoo.md), as this preset does",
}
# HRNet/HigherHRNet-Human-Pose-Estimation README (#Params, GFLOPs = get_model_summary MACs / 1e9)
HIGHERHRNET_README = {"higherhrnet_w32_512": ("28.6M", "47.9"), "higherhrnet_w32_640": ("28.6M", "74.8"),
                      "higherhrnet_w48_640": ("63.8M", "154.3")}
# preset -> the "config" column of ../shared/README.md's mmpose table
FAMILY_ROWS = {"litehrnet_18_256x192": "Lite-HRNet-18", "hrformer_small_256x192": "HRFormer-S"}

PAPER = "paper: Conv2d + Linear MACs, bias excluded, / 2**30"
COLUMNS = ["quantity", "published", "ours", "convention", "input (H x W)", "matches", "source", "why"]


@dataclass(frozen=True)
class PublishedComparison:
    """``table``: the rows (``COLUMNS``; empty when there is nothing to compare); ``note``: one line saying what
    was compared, or why nothing was."""

    table: pd.DataFrame
    note: str


def shown_at(value: float, published: str) -> str:
    """``value`` at ``published``'s precision and unit suffix (``28.5M`` -> one decimal, ``M``)."""
    digits = re.sub(r"[A-Za-z]+$", "", published)
    suffix = published[len(digits):]
    decimals = len(digits.split(".")[1]) if "." in digits else 0
    return f"{value:.{decimals}f}{suffix}"


def _tables(text: str) -> dict[str, list[dict]]:
    """model_zoo.md's markdown tables by the first word of their section title."""
    out: dict[str, list[dict]] = {}
    for section in re.split(r"^## ", text, flags=re.M)[1:]:
        lines = [ln.strip() for ln in section.splitlines() if ln.strip().startswith("|")]
        if len(lines) >= 3:
            header = [c.strip() for c in lines[0].strip("|").split("|")]
            out[section.split()[0]] = [dict(zip(header, (c.strip() for c in ln.strip("|").split("|"))))
                                       for ln in lines[2:]]
    return out


def _row(quantity, published, ours, convention, hw, source, why) -> dict:
    value = shown_at(ours, published)
    return dict(zip(COLUMNS, (quantity, published, value, convention, f"{hw[0]} x {hw[1]}", value == published,
                              source, why)))


def _zoo(name: str, cfg, shared: Path) -> list[dict]:
    path = shared / "model_zoo.md"
    text = path.read_text(encoding="utf-8")
    source = "official HRNet README (model_zoo.md)"
    rep = analyze(cfg)
    if name == "face_hrnetv2_w18_wflw":
        m = re.search(r"README says ([\d.]+)M params and ([\d.]+) GFLOPs", text)
        if m is None:
            return []
        return [_row("params", f"{m.group(1)}M", rep.params / 1e6, "every parameter", cfg.input_hw, source,
                     CODE_DIFFERS[name]),
                _row("GFLOPs", m.group(2), rep.gflops_paper, PAPER, cfg.input_hw, source,
                     f"ours {rep.gflops_paper:.2f}: the README prints the code's figure cut, not rounded")]
    section, model, size = MODEL_ZOO_ROWS[name]
    rows = [r for r in _tables(text).get(section, []) if r.get("model") == model and
            (size is None or r.get("input (H x W)") == size)]
    if not rows:
        return []
    row = rows[0]
    hw = SEG_INPUT if section == "Segmentation" else cfg.input_hw
    at = analyze(cfg, hw) if hw != tuple(cfg.input_hw) else rep
    seg = (f"published at {hw[0]} x {hw[1]} (the Cityscapes evaluation size); this preset trains at "
           f"{cfg.input_hw[0]} x {cfg.input_hw[1]}: {rep.gflops_paper:.1f} GFLOPs there") if section == "Segmentation" else ""
    return [_row("params", row["params"], rep.params / 1e6, "every parameter", hw, source,
                 CODE_DIFFERS.get(name, "")),
            _row("GFLOPs", row["GFLOPs"], at.gflops_paper, PAPER, hw, source, seg)]


def _higher(name: str, cfg) -> list[dict]:
    params, gflops = HIGHERHRNET_README[name]
    rep = analyze(cfg)
    source = "HigherHRNet README"
    return [_row("params", params, rep.params / 1e6, "every parameter", cfg.input_hw, source, ""),
            _row("GFLOPs", gflops, rep.conv_linear_macs / 1e9, "get_model_summary MACs / 1e9 (transposed conv per "
                 "output position)", cfg.input_hw, source,
                 f"that README divides by 1e9, not 2**30: {rep.gflops_paper:.2f} in the paper convention")]


def _family(name: str, cfg, shared: Path) -> list[dict]:
    text = (shared / "README.md").read_text(encoding="utf-8")
    m = re.search(rf"^\| {re.escape(FAMILY_ROWS[name])} \| ([\d,]+) \|[^|]*\| ([\d.]+M) / ([\d.]+[MG])", text,
                  flags=re.M)
    if m is None:
        return []
    rep = analyze(cfg)
    source = "mmpose / paper (../shared/README.md)"
    exact = int(m.group(1).replace(",", ""))
    why = (f"ours is the exact count ../shared/README.md gives for the config ({exact:,}); the published figure "
           "is not that count rounded" if exact == rep.params and shown_at(exact / 1e6, m.group(2)) != m.group(2)
           else "")
    rows = [_row("params", m.group(2), rep.params / 1e6, "every parameter", cfg.input_hw, source, why)]
    flops = m.group(3)
    if flops.endswith("M"):  # Lite-HRNet: torchstat "Flops" in 2**20 units
        rows.append(_row("FLOPs", flops, (rep.torchstat_flops or 0) / 2**20, "torchstat Flops / 2**20 (bias, "
                         "BatchNorm, ReLU counted; each module once)", cfg.input_hw, source,
                         f"Lite-HRNet's README counts with torchstat; {rep.gflops_paper:.3f} GFLOPs in the paper "
                         "convention"))
    else:
        rows.append(_row("GFLOPs", flops, rep.gflops_paper, PAPER, cfg.input_hw, source,
                         f"window-attention matrix products are not Conv2d / Linear: "
                         f"{rep.attention_macs / 2**30:.2f} G more in their own column (attention_macs)"))
    return rows


def _preset(name: str) -> Path | None:
    for path in (PRESET_DIR / f"{name}.yaml", PRESET_DIR / "networks" / f"{name}.yaml"):
        if path.is_file():
            return path
    return None


def published_vs_computed(cfg, shared: Path | None = None) -> PublishedComparison:
    """See the module docstring. ``cfg``: a loaded config (an ``HRNetConfig`` or ``NetworkConfig``) at any
    input size (the published figures have their own); ``shared``: ``../shared`` by default."""
    shared = shared or shared_dir()
    empty = pd.DataFrame(columns=COLUMNS)
    name = cfg.name
    known = name in MODEL_ZOO_ROWS or name in HIGHERHRNET_README or name in FAMILY_ROWS or name in CODE_DIFFERS
    path = _preset(name) if known else None
    if path is None:
        return PublishedComparison(empty, f"{name}: no published figures are recorded for this model")
    preset = load_config(path)
    if cfg.with_input(preset.input_hw) != preset:
        return PublishedComparison(empty, f"{name} is edited: the published figures are those of the unedited "
                                          f"preset {path.name}")
    if name in HIGHERHRNET_README:
        rows = _higher(name, preset)
    elif not shared.is_dir():
        return PublishedComparison(empty, f"{shared} not found: the published figures are read from ../shared")
    else:
        rows = _family(name, preset, shared) if name in FAMILY_ROWS else _zoo(name, preset, shared)
    if not rows:
        return PublishedComparison(empty, f"{name}: its row was not found in {shared}")
    table = pd.DataFrame(rows, columns=COLUMNS)
    n = int(table["matches"].sum())
    return PublishedComparison(table, f"{name}: {n} of {len(table)} published figures reproduced at their "
                                      "precision, each in its source's convention")


__all__ = ["CODE_DIFFERS", "COLUMNS", "FAMILY_ROWS", "HIGHERHRNET_README", "MODEL_ZOO_ROWS", "PublishedComparison",
           "published_vs_computed", "shown_at"]
