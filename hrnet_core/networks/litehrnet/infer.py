"""Lite-HRNet's backbone dict (mmpose ``LiteHRNet`` arguments) read from a state_dict's names and shapes alone.

What the weights tell: ``in_channels``, the stem (``stem_channels``, ``out_channels``, ``expand_ratio``), per
stage the modules, branches, blocks, ``module_type`` (``LITE`` has cross-resolution weighting tensors, ``NAIVE``
shuffle units), the widths, ``reduce_ratios`` (from the cross-resolution weighting's squeeze width; 8, the
papers' value, when it fits) and ``with_fuse``; ``with_head`` (``head_layer.*``). What they cannot: the norm
type (BN / SyncBN build the same tensors), ``norm_eval``, ``with_cp`` — mmpose's defaults.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

PAPER_REDUCE_RATIO = 8
NOT_IN_WEIGHTS = ("norm_cfg.type", "norm_eval", "with_cp", "frozen_stages")
MAX_INFERRED = 8  # stages or branches: more is no Lite-HRNet this project builds, and bounds the key scans


def _indices(shapes: Mapping[str, tuple], pattern: str) -> list[int]:
    rx = re.compile(pattern)
    return sorted({int(m.group(1)) for k in shapes if (m := rx.match(k))})


def _reduce_ratio(total: int, squeezed: int) -> int | None:
    """The ratio ``r`` with ``int(total / r) == squeezed`` (mmpose ``CrossResolutionWeighting``), 8 first."""
    for r in (PAPER_REDUCE_RATIO, *range(1, total + 1)):
        if int(total / r) == squeezed:
            return r
    return None


def infer(shapes: Mapping[str, tuple]) -> dict | None:
    """The mmpose backbone dict of a Lite-HRNet whose tensors have ``shapes`` (name -> shape, official names: no
    ``backbone.`` prefix), or None when the names are not Lite-HRNet's (no ``stem.conv1.conv.weight``). The
    result is only a candidate: the caller builds it and compares every key and shape."""
    conv1 = shapes.get("stem.conv1.conv.weight")
    if conv1 is None or len(conv1) != 4 or "stem.expand_conv.conv.weight" not in shapes:
        return None
    stem_ch, in_ch = conv1[0], conv1[1]
    half = stem_ch // 2
    mid = shapes["stem.expand_conv.conv.weight"][0]
    linear = shapes.get("stem.linear_conv.conv.weight", (half,))[0]
    inc = shapes.get("stem.branch1.1.conv.weight", (0,))[0]
    out_ch = stem_ch if linear == half else inc + stem_ch
    ratio = mid / stem_ch
    stages = _indices(shapes, r"stage(\d+)\.")
    if stages != list(range(len(stages))) or not 0 < len(stages) <= MAX_INFERRED:
        return None
    spec = {k: [] for k in ("num_modules", "num_branches", "num_blocks", "module_type", "with_fuse",
                            "reduce_ratios", "num_channels")}
    for s in stages:
        lite = f"stage{s}.0.layers.0.cross_resolution_weighting.conv1.conv.weight" in shapes
        if lite:
            branches = _indices(shapes, rf"stage{s}\.0\.layers\.0\.depthwise_convs\.(\d+)\.conv\.weight$")
            blocks = _indices(shapes, rf"stage{s}\.0\.layers\.(\d+)\.cross_resolution_weighting\.conv1\.conv\.weight$")
            widths = [2 * shapes[f"stage{s}.0.layers.0.depthwise_convs.{b}.conv.weight"][0] for b in branches]
            squeeze = shapes[f"stage{s}.0.layers.0.cross_resolution_weighting.conv1.conv.weight"]
            reduce = _reduce_ratio(squeeze[1], squeeze[0])
        else:
            branches = _indices(shapes, rf"stage{s}\.0\.layers\.(\d+)\.0\.branch2\.0\.conv\.weight$")
            blocks = _indices(shapes, rf"stage{s}\.0\.layers\.0\.(\d+)\.branch2\.0\.conv\.weight$")
            widths = [2 * shapes[f"stage{s}.0.layers.{b}.0.branch2.0.conv.weight"][0] for b in branches]
            reduce = PAPER_REDUCE_RATIO  # a NAIVE stage has no weighting to read it from; it is unused there
        if not 0 < len(branches) <= MAX_INFERRED or not blocks or reduce is None:
            return None
        spec["num_modules"].append(len(_indices(shapes, rf"stage{s}\.(\d+)\.layers\.")))
        spec["num_branches"].append(len(branches))
        spec["num_blocks"].append(len(blocks))
        spec["module_type"].append("LITE" if lite else "NAIVE")
        modules = spec["num_modules"][-1]
        fused = {int(k.split(".")[1]) for k in shapes if k.startswith(f"stage{s}.") and ".fuse_layers." in k}
        flags = [len(branches) == 1 or m in fused for m in range(modules)]
        spec["with_fuse"].append(flags[0] if len(set(flags)) == 1 else flags)  # mmpose's bool when they agree
        spec["reduce_ratios"].append(reduce)
        spec["num_channels"].append(widths)
    return {"type": "LiteHRNet", "in_channels": in_ch,
            "extra": {"stem": {"stem_channels": stem_ch, "out_channels": out_ch,
                               "expand_ratio": int(ratio) if ratio == int(ratio) else ratio},
                      "num_stages": len(stages), "stages_spec": spec,
                      "with_head": any(k.startswith("head_layer.") for k in shapes)}}


__all__ = ["NOT_IN_WEIGHTS", "infer"]
