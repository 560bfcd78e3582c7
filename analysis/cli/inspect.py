"""``hrnet-explorer inspect [CONFIG] [--checkpoint F] [--dump-config]``: family, head, stage/branch table,
params, fusions, output shapes; the checkpoint's format and naming (official, timm, mmpose 0.x / 1.x).

Without CONFIG the config is inferred from the checkpoint's tensor names and shapes
(``hrnet_core.infer_config``); ``--dump-config`` prints it as the project's YAML.
"""

from __future__ import annotations

import json

import hrnet_core as hc
from analysis.complexity.summary import model_summary
from hrnet_core.model import check_buildable


def register(sub) -> None:
    p = sub.add_parser("inspect", help="build a model from a config (or a checkpoint alone) and describe it")
    p.add_argument("config", nargs="?", help="official experiment YAML or project YAML (default: inferred from --checkpoint)")
    p.add_argument("--fusion", choices=hc.FUSION_PRESETS, help="override the fusion schedule")
    p.add_argument("--checkpoint", help="load this .pth / .pth.tar / .safetensors strictly (official, timm or mmpose names)")
    p.add_argument("--dump-config", action="store_true", help="print the config as the project's YAML and stop")
    p.add_argument("--allow-nonfinite-weights", action="store_true",
                   help="load a checkpoint even with NaN/Inf weights (warns); refused by default")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def _inferred_note(cfg) -> str:
    missing = hc.NOT_IN_WEIGHTS if isinstance(cfg, hc.HRNetConfig) else (
        "input_size", "name", "description", *(f"backbone.{k}" for k in cfg.spec.not_in_weights))
    return ("config: inferred from the checkpoint's tensor names and shapes; not in the weights, defaults "
            f"used: {', '.join(missing)}")


def run(args) -> int:
    if args.config:
        cfg = hc.load_config(args.config)
        source = args.config
    elif args.checkpoint:
        cfg, _ = hc.config_from_checkpoint(args.checkpoint)
        source = "inferred"
    else:
        raise hc.UserInputError("CONFIG: give a config file, or --checkpoint F to infer the config from its weights")
    if args.fusion:
        cfg = cfg.with_fusion(args.fusion)
    check_buildable(cfg)  # describe only what could be built: the whole-model budgets of hrnet_core.budget
    if args.dump_config:
        if source == "inferred":
            print(f"# {_inferred_note(cfg)}")
        print(hc.dump_config(cfg), end="")
        return 0
    summary = model_summary(cfg)
    report = None
    if args.checkpoint:
        model = hc.build_model(cfg)
        report = hc.load_checkpoint(model, args.checkpoint, allow_nonfinite=args.allow_nonfinite_weights)
    if args.json:
        out = summary.to_dict()
        out["config_source"] = source
        if report is not None:
            out["checkpoint"] = report.status
            out["checkpoint_format"] = report.format_line
        print(json.dumps(out))
        return 0
    if source == "inferred":
        print(_inferred_note(cfg))
    print(summary.to_text())
    print(f"checkpoint: {report.status if report else 'none (random weights)'}")
    if report is not None:
        print(report.format_line)
    return 0
