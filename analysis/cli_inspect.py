"""``hrnet-explorer inspect CONFIG``: family, head, stage/branch table, params, fusions, output shapes."""

from __future__ import annotations

import json

import hrnet_core as hc
from hrnet_core.model import check_buildable

from .summary import model_summary


def register(sub) -> None:
    p = sub.add_parser("inspect", help="build a model from a config and describe it")
    p.add_argument("config", help="official experiment YAML or project YAML")
    p.add_argument("--fusion", choices=hc.FUSION_PRESETS, help="override the fusion schedule")
    p.add_argument("--checkpoint", help="load this .pth/.pth.tar strictly")
    p.add_argument("--allow-nonfinite-weights", action="store_true",
                   help="load a checkpoint even with NaN/Inf weights (warns); refused by default")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args) -> int:
    cfg = hc.load_config(args.config)
    if args.fusion:
        cfg = cfg.with_fusion(args.fusion)
    check_buildable(cfg)  # describe only what could be built: the whole-model budgets of hrnet_core.budget
    summary = model_summary(cfg)
    checkpoint = None
    if args.checkpoint:
        model = hc.build_model(cfg)
        checkpoint = hc.load_checkpoint(model, args.checkpoint, allow_nonfinite=args.allow_nonfinite_weights).status
    if args.json:
        out = summary.to_dict()
        if checkpoint is not None:
            out["checkpoint"] = checkpoint
        print(json.dumps(out))
        return 0
    print(summary.to_text())
    print(f"checkpoint: {checkpoint or 'none (random weights)'}")
    return 0



