"""The weights a feature-map view runs with: an untrained network or a checkpoint, and what a run
checkpoint says about itself.

Untrained network: PyTorch's default initialisation (Kaiming-uniform convs, BatchNorm weight 1,
bias 0, running mean 0 and variance 1), seeded, in eval mode. Not the official N(0, 0.001) init
(``hrnet_core.init_weights``): that init is meant for training, where BatchNorm normalises with batch
statistics; in eval mode the running statistics are (0, 1), so every conv scales the signal by about
``0.001 * sqrt(fan_in)`` and after ~40 layers the branches hold 1e-10..1e-20 (measured on pose W32:
per-branch std 2e-11 at 1/32). PyTorch's default keeps per-branch std around 0.03..0.3 on the same image.
Calibrating BatchNorm on the image would also avoid the collapse, but makes the weights depend on the
image (two images are no longer seen by the same network) and the cached model mutable; the default init
needs neither.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

import hrnet_core as hc
from hrnet_core import HRNetConfig

UNTRAINED_INIT = "default"
UNTRAINED = "untrained network"


def untrained_status(init: str = UNTRAINED_INIT, seed: int = 0) -> str:
    """How a page or the CLI names random weights, e.g. ``untrained network (PyTorch default init, seed 0)``."""
    label = "PyTorch default init" if init == "default" else "official N(0, 0.001) init: collapses in eval mode"
    return f"{UNTRAINED} ({label}, seed {seed})"


def build_weights(cfg: HRNetConfig, checkpoint: str | Path | None = None, seed: int = 0,
                  init: str = UNTRAINED_INIT, allow_nonfinite: bool = False) -> tuple[torch.nn.Module, str]:
    """``(model, status)``: ``cfg``'s model on CPU in eval mode, with ``checkpoint`` loaded strictly
    (``hrnet_core.load_checkpoint``; raises ``CheckpointError`` when it does not fit or, unless
    ``allow_nonfinite``, holds NaN / Inf weights), else untrained (``init``, seeded by ``seed`` without
    touching the global RNG)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = hc.build_model(cfg, init=init)
    status = untrained_status(init, seed)
    if checkpoint:
        status = hc.load_checkpoint(model, checkpoint, allow_nonfinite=allow_nonfinite).status
    return model.eval(), status


def checkpoint_meta(path: str | Path) -> dict:
    """What a project checkpoint records besides its weights: ``epoch``, ``variant``, ``seed`` and the
    validation metrics of its epoch (``metrics_row``: AP, PCK@0.1, ... as fractions). Empty for a file
    without them (an official checkpoint, a bare state_dict) or one that cannot be read."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - the weights loader reports unreadable files with its own message
        return {}
    if not isinstance(obj, dict):
        return {}
    meta = {k: obj[k] for k in ("epoch", "variant", "seed") if isinstance(obj.get(k), (int, str))}
    try:
        row = json.loads(obj["metrics_row"]) if isinstance(obj.get("metrics_row"), str) else {}
    except json.JSONDecodeError:
        row = {}
    if isinstance(row, dict) and row:
        meta["metrics"] = {k: v for k, v in row.items() if isinstance(v, (int, float))}
    return meta


def describe_checkpoint(meta: dict) -> str:
    """One short phrase for a header: ``epoch 2 · val AP 0.0 % · PCK@0.1 9.9 %`` (empty when unknown)."""
    parts = [f"epoch {meta['epoch']}"] if "epoch" in meta else []
    metrics = meta.get("metrics", {})
    for key in ("AP", "PCK@0.1"):
        if isinstance(metrics.get(key), (int, float)):
            parts.append(f"val {key} {100 * metrics[key]:.1f} %")
    return " · ".join(parts)


__all__ = ["UNTRAINED", "UNTRAINED_INIT", "build_weights", "checkpoint_meta", "describe_checkpoint", "untrained_status"]
