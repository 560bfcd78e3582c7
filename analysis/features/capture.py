"""What each resolution branch computes: per-module, per-branch feature maps of a real image.

``capture(model, cfg, image)`` runs the model once through ``HRNet.forward_intermediates`` (every
module's per-branch outputs, plus ``stem`` and ``layer1``; no hooks, no monkeypatching) and applies
the head to the final branches, exactly as ``model(x)`` does. On CUDA it runs with channels_last and
bf16 autocast (``hrnet_core.device``); the maps are reduced on the device in float32 and only the
small projections travel to the CPU.

Per module and branch (activation ``a`` of shape ``(C, H, W)``):

- ``mean_abs``: channel mean of ``|a|`` ``(H, W)``; ``max``: channel max ``(H, W)``;
  ``energy``: L2 norm over channels ``sqrt(sum_c a^2)`` ``(H, W)``;
- ``topk``: the ``k`` channels with the largest energy ``sum_{h,w} a^2`` (indices and maps);
- statistics: mean, std, sparsity (fraction of exact zeros: module outputs are post-ReLU), energy
  (mean of ``a^2`` per element, comparable across resolutions and widths), max.

Head outputs: per-joint heatmaps with their argmax (pose, face; HigherHRNet: the joint channels of its
predictions averaged at the highest resolution, as its official inference), the class map (segmentation, V2 or
OCR's final logits: bilinearly upsampled to the input, then argmax, as the official evaluation), top-5 classes
(classification; ImageNet class indices), or the pyramid levels (V2p).

``engine="onnxruntime"`` runs that same forward (every module's outputs and the head's) as one ONNX graph in
onnxruntime on the CPU (``analysis.export.ort_engine``; exported once per call, ``timings['export_s']``).

``analysis.features.render.write_feature_maps(capture, out_dir)`` renders everything to PNG (Pillow, numpy colormaps) plus
``stats.csv``; see ``analysis.features.render`` for the images and their layout.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from analysis.ablation import keypoints as coco
from analysis.imaging.images import bundled_box, load_image, prepare
from hrnet_core import HRNetConfig
from hrnet_core.budget import check_activations
from hrnet_core.device import autocast, device_label, prepare_input, resolve_device
from hrnet_core.device import prepare as prepare_model
from hrnet_core.errors import UserInputError
from hrnet_core.fast_path import fast_inputs, fast_model
from hrnet_core.keys import split_output_key
from hrnet_core.networks.model import NetworkModel

TOPK = 16

COCO_JOINTS = coco.COCO_KEYPOINTS
COCO_SKELETON = tuple((a - 1, b - 1) for a, b in coco.COCO_SKELETON)  # 0-based pairs
MPII_JOINTS = (
    "r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "pelvis", "thorax", "upper_neck",
    "head_top", "r_wrist", "r_elbow", "r_shoulder", "l_shoulder", "l_elbow", "l_wrist",
)
MPII_SKELETON = (
    (0, 1), (1, 2), (2, 6), (6, 3), (3, 4), (4, 5), (6, 7), (7, 8), (8, 9), (10, 11), (11, 12), (12, 7),
    (7, 13), (13, 14), (14, 15),
)
STATS_COLUMNS = ("key", "stage", "module", "branch", "resolution", "shape", "channels", "height", "width",
                 "mean", "std", "sparsity", "energy", "max")


class FeatureError(UserInputError):
    """A feature capture that cannot run as asked (e.g. ``--device cuda`` without a GPU)."""


@dataclass
class BranchMaps:
    """One module's output on one branch, reduced to 2-D projections and statistics."""

    key: str  # forward_intermediates key: ``stem``, ``layer1`` or ``stageS.moduleM.branchB``
    stage: str  # ``stem``, ``stage1``, ``stage2``, ...
    module: str  # ``stem``, ``layer1`` or ``stageS.moduleM``
    branch: int
    stride: int  # input pixels per feature pixel: 4 * 2**branch
    shape: tuple[int, ...]  # (N, C, H, W), as forward_intermediates returned it
    mean_abs: np.ndarray  # (H, W) float32
    max: np.ndarray  # (H, W)
    energy: np.ndarray  # (H, W): L2 norm over channels
    channel_energy: np.ndarray  # (C,): sum over pixels of a^2
    topk_channels: np.ndarray  # (k,) int: channels with the largest energy, largest first
    topk: np.ndarray  # (k, H, W)
    stats: dict[str, float]  # mean, std, sparsity, energy, max
    raw: np.ndarray | None = None  # (C, H, W) float32 when captured with keep_raw=True

    @property
    def resolution(self) -> str:
        return f"1/{self.stride}"

    @property
    def name(self) -> str:
        return self.key


@dataclass
class HeadOutput:
    """The head's output in a form ready to draw.

    ``kind``: ``heatmaps`` (pose / face: ``maps`` (J, h, w), ``points`` (J, 2) argmax (x, y) in input
    pixels, ``scores`` (J,) max values), ``segmentation`` (``class_map`` (H, W) int at input size,
    ``classes``), ``classification`` (``top5``: list of (class index, probability)) or ``pyramid``
    (``levels``: per level the channel mean of |a|, ``shapes``).
    """

    kind: str
    shapes: tuple[tuple[int, ...], ...]
    maps: np.ndarray | None = None
    points: np.ndarray | None = None
    scores: np.ndarray | None = None
    names: tuple[str, ...] = ()
    skeleton: tuple[tuple[int, int], ...] = ()
    class_map: np.ndarray | None = None
    classes: int = 0
    top5: tuple[tuple[int, float], ...] = ()
    levels: tuple[np.ndarray, ...] = ()


@dataclass
class FeatureCapture:
    """Everything ``capture`` measured for one image; ``branches`` in forward order."""

    config_name: str
    family: str
    head_kind: str
    input_hw: tuple[int, int]
    device: str  # label, e.g. ``cpu`` or ``cuda (NVIDIA H100 80GB HBM3)``
    image: np.ndarray  # the uint8 RGB (H, W, 3) crop the network saw
    branches: OrderedDict[str, BranchMaps]
    head: HeadOutput
    timings: dict[str, float] = field(default_factory=dict)
    source: str = ""

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        """``forward_intermediates`` key -> captured shape ``(N, C, H, W)``."""
        return {k: b.shape for k, b in self.branches.items()}

    @property
    def modules(self) -> list[str]:
        """Module names in forward order (``stem``, ``layer1``, ``stage2.module0``, ...)."""
        return list(OrderedDict.fromkeys(b.module for b in self.branches.values()))

    def module_branches(self, module: str) -> list[BranchMaps]:
        return [b for b in self.branches.values() if b.module == module]

    def stats(self) -> pd.DataFrame:
        """One row per module and branch: module, branch, resolution, shape, mean, std, sparsity,
        energy (mean of a^2), max."""
        rows = []
        for b in self.branches.values():
            _, c, h, w = b.shape
            rows.append({
                "key": b.key, "stage": b.stage, "module": b.module, "branch": b.branch, "resolution": b.resolution,
                "shape": f"{c}x{h}x{w}", "channels": c, "height": h, "width": w, **b.stats,
            })
        return pd.DataFrame(rows, columns=list(STATS_COLUMNS))


# ---- capture ---------------------------------------------------------------------------------------
def _reduce(key: str, t: torch.Tensor, topk: int, keep_raw: bool) -> BranchMaps:
    """Projections and statistics of one ``(1, C, H, W)`` activation, computed on its device in float32."""
    stage, module, branch = split_output_key(key)
    a = t[0].float()
    c = a.shape[0]
    sq = a * a
    channel_energy = sq.sum(dim=(1, 2))
    k = min(topk, c)
    idx = torch.topk(channel_energy, k).indices
    maps = torch.stack([a.abs().mean(0), a.amax(0), sq.sum(0).sqrt()])
    scalars = torch.stack([a.mean(), a.std(correction=0), (a == 0).float().mean(), sq.mean(), a.max()])
    # One transfer per branch (the small maps, the top-k channels and the scalars).
    maps, top, channel_energy, idx, scalars = (x.cpu() for x in (maps, a[idx], channel_energy, idx, scalars))
    s = scalars.tolist()
    return BranchMaps(
        key=key, stage=stage, module=module, branch=branch, stride=4 * 2**branch, shape=tuple(t.shape),
        mean_abs=maps[0].numpy(), max=maps[1].numpy(), energy=maps[2].numpy(),
        channel_energy=channel_energy.numpy(), topk_channels=idx.numpy(), topk=top.numpy(),
        stats={"mean": s[0], "std": s[1], "sparsity": s[2], "energy": s[3], "max": s[4]},
        raw=a.cpu().numpy() if keep_raw else None,
    )


def joint_names(family: str, n: int) -> tuple[tuple[str, ...], tuple[tuple[int, int], ...]]:
    """Joint names and skeleton: COCO for 17 pose joints, MPII for 16, numbered otherwise."""
    if family == "pose" and n == len(COCO_JOINTS):
        return COCO_JOINTS, COCO_SKELETON
    if family == "pose" and n == len(MPII_JOINTS):
        return MPII_JOINTS, MPII_SKELETON
    prefix = "landmark" if family == "face" else "joint"
    return tuple(f"{prefix}{j}" for j in range(n)), ()


def _head_output(cfg: HRNetConfig, out, input_hw: tuple[int, int]) -> HeadOutput:
    outs = list(out) if isinstance(out, (list, tuple)) else [out]
    shapes = tuple(tuple(o.shape) for o in outs)
    if cfg.head is None:  # a headless network: its backbone's maps, drawn as a pyramid
        return HeadOutput("pyramid", shapes, levels=tuple(o[0].float().abs().mean(0).cpu().numpy() for o in outs))
    kind = cfg.head.kind
    if kind == "cls":
        probs = torch.softmax(outs[0][0].float(), dim=0)
        p, i = torch.topk(probs, min(5, probs.numel()))
        return HeadOutput("classification", shapes, top5=tuple(zip(i.cpu().tolist(), p.cpu().tolist())),
                          classes=probs.numel())
    if kind == "v2p":
        levels = tuple(o[0].float().abs().mean(0).cpu().numpy() for o in outs)
        return HeadOutput("pyramid", shapes, levels=levels)
    y = outs[-1][0].float()  # (K, h, w); OCR returns [aux, out]: the final logits are last
    if kind == "higher":
        y = higher_heatmaps(outs, cfg.head.outputs)
    if cfg.family in ("pose", "face"):
        k, h, w = y.shape
        flat = y.reshape(k, -1)
        scores, arg = flat.max(dim=1)
        ys, xs = (arg // w).float(), (arg % w).float()
        # Heatmap cell centres in input pixels (stride = input / heatmap size).
        sx, sy = input_hw[1] / w, input_hw[0] / h
        points = torch.stack([(xs + 0.5) * sx - 0.5, (ys + 0.5) * sy - 0.5], dim=1)
        names, skeleton = joint_names(cfg.family, k)
        return HeadOutput("heatmaps", shapes, maps=y.cpu().numpy(), points=points.cpu().numpy(),
                          scores=scores.cpu().numpy(), names=names, skeleton=skeleton)
    align = cfg.upsample.align_corners if cfg.upsample.mode == "bilinear" else False
    up = F.interpolate(y[None], size=input_hw, mode="bilinear", align_corners=align)[0]
    return HeadOutput("segmentation", shapes, class_map=up.argmax(0).to(torch.int32).cpu().numpy(), classes=y.shape[0])


def higher_heatmaps(outs: list[torch.Tensor], joints: int) -> torch.Tensor:
    """HigherHRNet's heatmaps ``(J, h, w)`` at the highest prediction resolution: the joint channels (the first
    ``joints``; tag maps follow them) of every prediction, bilinearly resized there and averaged, as the official
    ``get_multi_stage_outputs`` (lib/core/inference.py) does with ``TEST.WITH_HEATMAPS`` on for all of them."""
    size = outs[-1].shape[-2:]
    maps = [F.interpolate(o[:1, :joints].float(), size=size, mode="bilinear", align_corners=False)
            if o.shape[-2:] != size else o[:1, :joints].float() for o in outs]
    return torch.stack(maps).mean(0)[0]


def _final_features(model: nn.Module, record: OrderedDict) -> list[torch.Tensor] | None:
    stage_names = getattr(model, "stage_names", None)
    if not stage_names:
        return None
    last = stage_names[-1]
    prefix = f"{last}.module{len(getattr(model, last)) - 1}.branch"
    feats = [v for k, v in record.items() if k.startswith(prefix)]
    return feats or None


def _forward(model: nn.Module, x: torch.Tensor) -> tuple[OrderedDict, object]:
    if isinstance(model, NetworkModel):  # one forward that records the exchange modules' outputs on the way
        return model.forward_intermediates(x)
    record = model.forward_intermediates(x)
    feats = _final_features(model, record)
    # Same as model(x): the head on the final module's branches (HRNet.forward), without a 2nd pass.
    out = model.head_module(feats) if feats is not None and hasattr(model, "head_module") else model(x)
    return record, out


def _onnxruntime_forward(model: nn.Module, x: torch.Tensor) -> tuple[OrderedDict, object, float]:
    """``_forward`` as one ONNX graph in onnxruntime: (record, head output, export seconds)."""
    from analysis.export.ort_engine import OrtFunction

    keys: list[str] = []

    def flat(t: torch.Tensor) -> list[torch.Tensor]:
        record, out = _forward(model, t)
        keys[:] = list(record)
        return list(record.values()) + (list(out) if isinstance(out, (list, tuple)) else [out])

    t0 = time.perf_counter()
    fn = OrtFunction(flat, x, owner=model)
    export_s = time.perf_counter() - t0
    outs = fn(x)
    head = outs[len(keys):]
    return OrderedDict(zip(keys, outs[:len(keys)])), (head if len(head) > 1 else head[0]), export_s


def capture(
    model: nn.Module,
    cfg: HRNetConfig,
    image,
    device: str = "auto",
    box: tuple[float, float, float, float] | None = None,
    topk: int = TOPK,
    keep_raw: bool = False,
    source: str | None = None,
    engine: str = "torch",
    fast: bool = False,
) -> FeatureCapture:
    """Run ``model`` (an ``HRNet``, or a ``NetworkModel`` of another network, built from ``cfg``) on ``image``
    and reduce every module's outputs (for a ``NetworkModel``: its ``forward_intermediates`` record, the
    exchange modules' per-branch outputs after their fusion, and the stem).

    ``image``: a bundled name (``astronaut``...), a file path, file bytes or an RGB array. It is
    preprocessed to ``cfg.input_hw`` (``analysis.imaging.images.prepare``); for pose, a bundled photograph's
    person box (or ``box``) gives the official affine crop. ``device``: ``auto``, ``cpu`` or ``cuda``;
    the model is put in eval mode and moved there. ``source`` names the image in the results.
    ``engine``: ``torch`` or ``onnxruntime`` (CPU only). ``fast`` (torch engine): the forward runs on the
    inference copy (``hrnet_core.fast_path.fast_model``: BatchNorm folded, channels_last), whose maps
    equal the official structure's to float rounding (the copy is checked when it is made). Raises
    ``ImageError`` / ``FeatureError`` / ``EngineError``.
    """
    from analysis.export.ort_engine import check_engine, onnxruntime_version

    check_activations(cfg, 1)  # the maps of a huge input would not fit in memory
    try:
        dev = resolve_device(device)
    except ValueError as err:
        raise FeatureError(str(err)) from None
    check_engine(engine, dev.type)
    if fast and engine != "torch":
        raise FeatureError(f"--fast: the inference fast path runs with --engine torch (got {engine})")
    t0 = time.perf_counter()
    if source is None:
        source = str(image) if isinstance(image, (str, Path)) else ("<array>" if isinstance(image, np.ndarray) else "<upload>")
    img = load_image(image)
    if box is None and cfg.family == "pose":
        box = bundled_box(image)
    crop, x = prepare(img, cfg.input_hw, box=box, family=cfg.family)
    t1 = time.perf_counter()
    model = prepare_model(model.eval(), dev)
    x = prepare_input(x, dev)
    timings = {}
    if engine == "onnxruntime":
        record, out, timings["export_s"] = _onnxruntime_forward(model, x)
        t1 += timings["export_s"]
    else:
        if fast:  # the copy is made (folded and checked) before the timed forward, as the export above
            t_fold = time.perf_counter()
            model, x = fast_model(model), fast_inputs(x)
            timings["fast_path_s"] = time.perf_counter() - t_fold
            t1 += timings["fast_path_s"]
        with torch.inference_mode(), autocast(dev):
            record, out = _forward(model, x)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    t2 = time.perf_counter()
    with torch.inference_mode():
        branches = OrderedDict((k, _reduce(k, v, topk, keep_raw)) for k, v in record.items())
        head = _head_output(cfg, out, tuple(cfg.input_hw))
    t3 = time.perf_counter()
    return FeatureCapture(
        config_name=cfg.name, family=cfg.family, head_kind=cfg.head.kind if cfg.head is not None else "none", input_hw=tuple(cfg.input_hw),
        device=device_label(dev) + (f" (onnxruntime {onnxruntime_version()})" if engine == "onnxruntime" else ""),
        image=crop, branches=branches, head=head,
        timings={"load_s": t1 - t0 - timings.get("export_s", 0.0) - timings.get("fast_path_s", 0.0), "forward_s": t2 - t1, "reduce_s": t3 - t2, **timings},
        source=str(source),
    )


__all__ = [
    "COCO_JOINTS",
    "MPII_JOINTS",
    "BranchMaps",
    "FeatureCapture",
    "FeatureError",
    "HeadOutput",
    "capture",
    "higher_heatmaps",
    "joint_names",
]
