"""HRFormer's backbone dict (mmpose ``HRFormer`` arguments) read from a state_dict's names and shapes alone.

What the weights tell: ``in_channels``; stage 1 (block, blocks, planes); per stage 2..4 the modules, branches,
blocks and widths per branch, ``num_heads`` and ``window_sizes`` (the relative position bias table is
``((2 w - 1)^2, heads)``), ``mlp_ratios`` (the FFN's ``fc1`` width over the branch width), ``with_rpe`` and stage
4's ``multiscale_output`` (the fuse rows of its last module). What they cannot: ``drop_path_rate`` (identity
in eval; 0 here), the norm type (BN / SyncBN build the same tensors), the upsampling, stage 1's unused
``num_heads`` / ``num_mlp_ratios``. Without the bias table (``with_rpe=False``) heads and windows are not in the
weights and nothing is inferred.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

NOT_IN_WEIGHTS = ("extra.drop_path_rate", "norm_cfg.type", "extra.upsample", "extra.stage1.num_heads",
                  "extra.stage1.num_mlp_ratios")
MAX_BRANCHES = 8  # more is no HRFormer this project builds, and bounds the key scans per branch


def _indices(shapes: Mapping[str, tuple], pattern: str) -> list[int]:
    rx = re.compile(pattern)
    return sorted({int(m.group(1)) for k in shapes if (m := rx.match(k))})


def _window(table_rows: int) -> int | None:
    side = math.isqrt(table_rows)
    return (side + 1) // 2 if side * side == table_rows and side % 2 == 1 else None


def _stage(shapes: Mapping[str, tuple], s: int, last: bool) -> dict | None:
    modules = _indices(shapes, rf"stage{s}\.(\d+)\.branches\.")
    branches = _indices(shapes, rf"stage{s}\.0\.branches\.(\d+)\.0\.norm1\.weight$")
    if not modules or not 0 < len(branches) <= MAX_BRANCHES:
        return None
    out = {"num_modules": len(modules), "num_branches": len(branches), "block": "HRFORMERBLOCK",
           "num_blocks": [], "num_channels": [], "num_heads": [], "mlp_ratios": [], "window_sizes": []}
    for b in branches:
        pre = f"stage{s}.0.branches.{b}"
        table = shapes.get(f"{pre}.0.attn.attn.relative_position_bias_table")
        if table is None:
            return None
        window, width = _window(table[0]), shapes[f"{pre}.0.norm1.weight"][0]
        if window is None:
            return None
        ratio = shapes[f"{pre}.0.ffn.fc1.weight"][0] / width
        out["num_blocks"].append(len(_indices(shapes, rf"stage{s}\.0\.branches\.{b}\.(\d+)\.norm1\.weight$")))
        out["num_channels"].append(width)
        out["num_heads"].append(table[1])
        out["mlp_ratios"].append(int(ratio) if ratio == int(ratio) else ratio)
        out["window_sizes"].append(window)
    if len(branches) > 1:  # a module without fuse_layers does not fuse (StageConfig.with_fuse)
        fused = {int(k.split(".")[1]) for k in shapes if k.startswith(f"stage{s}.") and ".fuse_layers." in k}
        flags = [m in fused for m in modules]
        if not all(flags):
            out["with_fuse"] = flags[0] if len(set(flags)) == 1 else flags
    if last:
        rows = _indices(shapes, rf"stage{s}\.{len(modules) - 1}\.fuse_layers\.(\d+)\.")
        out["multiscale_output"] = len(branches) == 1 or len(rows) > 1
    return out


def infer(shapes: Mapping[str, tuple]) -> dict | None:
    """The mmpose backbone dict of an HRFormer whose tensors have ``shapes`` (name -> shape, no ``backbone.``
    prefix), or None when the names are not HRFormer's (no window attention). A candidate only: the caller builds
    it and compares every key and shape."""
    if not any(k.endswith(".attn.attn.qkv.weight") for k in shapes) or "conv1.weight" not in shapes:
        return None
    units = _indices(shapes, r"layer1\.(\d+)\.conv1\.weight$")
    if not units:
        return None
    extra = {"drop_path_rate": 0.0, "with_rpe": True,
             "stage1": {"num_modules": 1, "num_branches": 1,
                        "block": "BOTTLENECK" if "layer1.0.conv3.weight" in shapes else "BASIC",
                        "num_blocks": [len(units)], "num_channels": [shapes["layer1.0.conv1.weight"][0]],
                        "num_heads": [1], "num_mlp_ratios": [4]}}
    stages = [s for s in (2, 3, 4) if any(k.startswith(f"stage{s}.") for k in shapes)]
    if stages != [2, 3, 4]:
        return None
    for s in stages:
        stage = _stage(shapes, s, last=s == 4)
        if stage is None:
            return None
        extra[f"stage{s}"] = stage
    return {"type": "HRFormer", "in_channels": shapes["conv1.weight"][1], "extra": extra}


__all__ = ["NOT_IN_WEIGHTS", "infer"]
