"""A model's structure at a glance: the data behind ``hrnet-explorer inspect`` and the UI's Build page."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd
import torch

from hrnet_core import HRNetConfig, build_on_meta, count_params, named_fusion
from hrnet_core.graph import architecture
from hrnet_core.shapes import branch_sizes, output_shapes


@dataclass(frozen=True)
class ModelSummary:
    """Family, head, params, fusing modules, output shapes at ``input_hw`` (H, W), stage table."""

    name: str
    family: str
    head: str
    params: int
    fusions: int
    modules: int
    fusion_schedule: str
    input_hw: tuple[int, int]
    output_shapes: tuple[tuple[int, ...], ...]
    stages: tuple[dict, ...]
    arch: str = "hrnet"

    def table(self) -> pd.DataFrame:
        """One row per stage and branch: resolution (fraction of the input), channels, blocks, modules."""
        return pd.DataFrame(list(self.stages))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["input_hw"] = list(self.input_hw)
        d["output_shapes"] = [list(s) for s in self.output_shapes]
        d["stages"] = [dict(r) for r in self.stages]
        return d

    def to_text(self) -> str:
        shapes = ", ".join("x".join(map(str, s)) for s in self.output_shapes)
        lines = [
            f"model: {self.name}",
            f"network: {self.arch}   family: {self.family}   head: {self.head}",
            f"params: {self.params:,} ({self.params / 1e6:.1f}M)",
            f"fusion: {self.fusions} of {self.modules} modules fuse ({self.fusion_schedule})",
            f"input: {self.input_hw[0]}x{self.input_hw[1]} (H x W)   output: {shapes}",
            "",
            self.table().to_string(index=False),
        ]
        return "\n".join(lines)


def stage_rows(cfg: HRNetConfig, input_hw: tuple[int, int] | None = None) -> list[dict]:
    """One row per stage and branch: resolution, ``size_hw`` (H x W at ``input_hw``, default the config's),
    block, blocks, output channels, modules and fusing modules."""
    sizes = branch_sizes(cfg, input_hw)
    rows = [{
        "stage": "stage1", "branch": 0, "resolution": "1/4", "size_hw": "{}x{}".format(*sizes[0]),
        "block": cfg.stage1.block, "blocks": cfg.stage1.blocks, "channels": cfg.stage1.out_channels,
        "modules": 1, "fusing_modules": 0,
    }]
    for s, st in enumerate(cfg.stages):
        for b in range(st.branches):
            rows.append({
                "stage": f"stage{s + 2}", "branch": b, "resolution": f"1/{4 * 2**b}", "size_hw": "{}x{}".format(*sizes[b]),
                "block": st.block, "blocks": st.blocks[b], "channels": st.out_channels[b],
                "modules": st.modules, "fusing_modules": sum(st.fuse),
            })
    return rows


def network_stage_rows(graph) -> list[dict]:
    """The stage table of another registered network, read from its ``ArchGraph``: one row per stage and branch
    (resolution, size, block kind, blocks per module, output channels, modules, fusing modules)."""
    rows: dict[tuple[str, int], dict] = {}
    fusing: dict[str, set] = {}
    for p in graph.parts:
        if p.kind == "fusion":
            fusing.setdefault(p.stage, set()).add(p.module)
        if p.kind != "branch" or p.out_shape is None:
            continue
        row = rows.setdefault((p.stage, p.branch), {
            "stage": p.stage, "branch": p.branch, "resolution": f"1/{p.resolution}",
            "size_hw": f"{p.out_shape[2]}x{p.out_shape[3]}", "channels": p.out_shape[1], "modules": set()})
        row["modules"].add(p.module)
    out = []
    for row in rows.values():
        row["modules"] = len(row.pop("modules"))
        row["fusing_modules"] = len(fusing.get(row["stage"], ()))
        out.append(row)
    return out


def _network_summary(cfg, hw: tuple[int, int]) -> ModelSummary:
    graph = architecture(cfg.with_input(hw))
    rows = network_stage_rows(graph)
    modules = {(p.stage, p.module) for p in graph.parts if p.kind == "branch" and p.module is not None}
    fusions = {(p.stage, p.module) for p in graph.parts if p.kind == "fusion"}
    with torch.no_grad():
        out = build_on_meta(cfg)(torch.empty(1, 3, *hw, device="meta"))
    shapes = tuple(tuple(t.shape) for t in (out if isinstance(out, list) else [out]))
    return ModelSummary(name=cfg.name, family=cfg.family, head="v1" if cfg.head else "none",
                        params=count_params(cfg), fusions=len(fusions), modules=len(modules),
                        fusion_schedule="custom", input_hw=hw, output_shapes=shapes, stages=tuple(rows),
                        arch=cfg.arch)


def model_summary(cfg: HRNetConfig, input_hw: tuple[int, int] | None = None) -> ModelSummary:
    """Summary of ``cfg`` at input ``(H, W)`` = ``input_hw`` (default: the config's); no weights allocated:
    params and shapes come from the meta device."""
    hw = tuple(input_hw or cfg.input_hw)
    if not isinstance(cfg, HRNetConfig):  # another registered network (hrnet_core.networks)
        return _network_summary(cfg, hw)
    return ModelSummary(
        name=cfg.name,
        family=cfg.family,
        head=cfg.head.kind,
        params=count_params(cfg),
        fusions=cfg.num_fusions,
        modules=cfg.num_modules,
        fusion_schedule=named_fusion(cfg) or "custom",
        input_hw=hw,
        output_shapes=tuple(output_shapes(cfg, hw)),
        stages=tuple(stage_rows(cfg, hw)),
    )
