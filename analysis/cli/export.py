"""``hrnet-explorer export [CONFIG] [--checkpoint F] --format onnx|torchscript|safetensors -o OUT
[--input-size H W] [--dynamic-batch] [--dynamic-size]``: write the model and verify the file (``analysis.export.formats``).

Without CONFIG the config is inferred from ``--checkpoint`` (``hrnet_core.infer_config``). ``-o`` is checked
once the config is known (``analysis.cli.args.output_file``: not a folder, its folder created and taking
files), before any model is built; the file appears only once verified (``analysis.export.formats.staged_output``).
"""

from __future__ import annotations

import dataclasses
import json

import hrnet_core as hc
from analysis.cli.args import output_file
from analysis.export.formats import FORMATS, OPSET, export


def register(sub) -> None:
    p = sub.add_parser("export", help="export to ONNX (checked in onnxruntime), TorchScript or safetensors")
    p.add_argument("config", nargs="?", help="official experiment YAML or project YAML (default: inferred from --checkpoint)")
    p.add_argument("--checkpoint", help="weights to export (.pth / .pth.tar / .safetensors; official, timm or mmpose names)")
    p.add_argument("--format", choices=FORMATS, required=True, help=f"onnx (opset {OPSET}), torchscript or safetensors")
    p.add_argument("-o", "--output", required=True, help="file to write")
    p.add_argument("--input-size", nargs=2, type=int, metavar=("H", "W"), help="traced input size (default: the config's)")
    p.add_argument("--dynamic-batch", action="store_true", help="ONNX: batch axis left free (checked at batch 2)")
    p.add_argument("--dynamic-size", action="store_true", help="ONNX: height and width left free (bilinear upsampling only)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.config:
        cfg = hc.load_config(args.config)
    elif args.checkpoint:
        cfg, _ = hc.config_from_checkpoint(args.checkpoint)
    else:
        raise hc.UserInputError("CONFIG: give a config file, or --checkpoint F to infer the config from its weights")
    output_file(args.output, "-o")  # before any model is built, as diagram and features do
    report = export(cfg, args.format, args.output, checkpoint=args.checkpoint,
                    input_hw=tuple(args.input_size) if args.input_size else None,
                    dynamic_batch=args.dynamic_batch, dynamic_size=args.dynamic_size)
    if args.json:
        out = dataclasses.asdict(report)
        out["input_hw"] = list(report.input_hw)
        out["outputs"] = list(report.outputs)
        print(json.dumps(out))
    else:
        print(report.to_text())
    return 0
