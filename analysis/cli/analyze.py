"""``hrnet-explorer analyze CONFIG``: params, FLOPs in three conventions side by side, activations, and where
they go (by stage, branch/resolution, component or module); ``--profile`` adds measured latency and memory."""

from __future__ import annotations

import json
from dataclasses import asdict

import pandas as pd

import hrnet_core as hc
from analysis.cli.args import bounded_int
from analysis.complexity import (
    BACKENDS,
    BY_KEYS,
    CONVENTIONS,
    OPTIONAL_CONVENTIONS,
    AnalysisError,
    ComplexityReport,
    analyze,
    frame_records,
)
from hrnet_core.budget import MAX_BATCH

BY_HELP = {
    "stage": "stem, stage1..stage4 (a transition counts in the stage it opens), head",
    "branch": "branch k at 1/(4*2^k) of the input; '-' = the stem and the head layers that merge branches",
    "component": "stem, layer1, transitions, residual units of the branches, fusion layers, head",
    "module": "stage and exchange block; '-' = the stage's transition (or the stem / layer1 / head)",
}


def register(sub) -> None:
    p = sub.add_parser("analyze", help="params, FLOPs (paper / fvcore / torch conventions), activations, latency")
    p.add_argument("config", help="official experiment YAML or project YAML")
    p.add_argument("--input-size", nargs=2, type=int, metavar=("H", "W"),
                   help="input height and width (default: the config's)")
    p.add_argument("--backend", choices=BACKENDS, default="analytic",
                   help="analytic: from the config's shapes (fast); fvcore: build the model and trace it")
    p.add_argument("--by", choices=BY_KEYS, default="stage", help="the breakdown table to print (default: stage)")
    p.add_argument("--fusion", choices=hc.FUSION_PRESETS, help="override the fusion schedule")
    p.add_argument("--batch", type=bounded_int(1, MAX_BATCH), default=1, help="batch size for the counts and the profile (default 1)")
    p.add_argument("--profile", action="store_true", help="also measure latency and memory part by part")
    p.add_argument("--profile-mode", choices=("stage", "branch"),
                   help="profile per stem/stage/transition/head, or per branch and fusion of each module "
                        "(default: branch with --by branch, else stage)")
    p.add_argument("--fast", action="store_true",
                   help="profile the inference fast path (BatchNorm folded, channels_last) instead of the official structure")
    p.add_argument("--device", default="auto", help="profile device: auto, cpu or cuda (default auto)")
    p.add_argument("--engine", choices=("torch", "onnxruntime"), default="torch",
                   help="profile in PyTorch (default) or each part as ONNX in onnxruntime (CPU)")
    p.add_argument("--warmup", type=bounded_int(0, 10_000), help="profile warm-up iterations (default 10 on CUDA, 2 on CPU)")
    p.add_argument("--iters", type=bounded_int(1, 10_000), help="profile timed iterations (default 50 on CUDA, 5 on CPU)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def _pct(v: float) -> str:
    return f"{100 * v:.1f}%"


def _label(v) -> str:
    return "-" if v is None or v is pd.NA or (isinstance(v, float) and pd.isna(v)) else str(v)


def format_view(report: ComplexityReport, key: str) -> str:
    """The ``by`` view as a text table: params, paper GFLOPs, fvcore GFLOPs, activations, with shares."""
    g = report.by(key)
    keys = ["stage", "module"] if key == "module" else (["branch", "resolution"] if key == "branch" else [key])
    out = pd.DataFrame({k: [_label(v) for v in g[k]] for k in keys})
    out["params"] = [f"{v / 1e6:.3f}M" for v in g["params"]]
    out["params %"] = [_pct(v) for v in g["params_share"]]
    out["GFLOPs paper"] = [f"{v / 2**30:.3f}" for v in g["macs"]]
    out["paper %"] = [_pct(v) for v in g["macs_share"]]
    out["GFLOPs fvcore"] = [f"{v / 1e9:.3f}" for v in g["flops"]]
    out["fvcore %"] = [_pct(v) for v in g["flops_share"]]
    out["activations %"] = [_pct(v) for v in g["activations_share"]]
    return out.to_string(index=False)


def format_report(report: ComplexityReport, key: str) -> str:
    """The ``analyze`` text output: totals (params; GFLOPs as paper MACs / 2**30, fvcore and torch flops / 1e9),
    what fvcore leaves out, activations (MiB at float32 and bfloat16) and the ``key`` view."""
    h, w = report.input_hw
    lines = [
        f"model: {report.name}   family: {report.family}   head: {report.head}   fusion: {report.fusion}",
        f"input: {h}x{w} (H x W)   batch: {report.batch}   backend: {report.backend}",
        f"params: {report.params:,} ({report.params / 1e6:.2f}M)",
    ]
    if report.description:
        lines.append(f"note: {report.description}")
    lines += ["", "FLOPs, three conventions side by side:"]
    raw = {
        "paper": f"{report.conv_linear_macs:,} multiply-adds / 2**30",
        "fvcore": f"{report.fvcore_flops:,} flops / 1e9",
        "torch": f"{report.torch_flops:,} flops / 1e9",
    }
    for name, conv in CONVENTIONS.items():
        lines.append(f"  {name:<7} {conv.value(report):10.3f} G   ({raw[name]})")
        lines.append(f"          {conv.description}")
    if report.torchstat_flops is not None:
        conv = OPTIONAL_CONVENTIONS["torchstat"]
        lines.append(f"  torchstat {conv.value(report):8.3f} G   ({report.torchstat_flops:,} flops / 2**30 = "
                     f"{report.torchstat_flops / 2**20:.1f} M in 2**20 units, Lite-HRNet's published figure)")
        lines.append(f"          {conv.description}")
    if report.unsupported_ops:
        skipped = ", ".join(
            f"{op} x{n} ({report.uncounted_elements.get(op, 0):,} output elements)"
            for op, n in sorted(report.unsupported_ops.items())
        )
        lines.append(f"  not in fvcore's total (unsupported operators, counted 0): {skipped}")
    if report.untraced_flops:
        dead = report.breakdown[~report.breakdown["live"]]
        lines.append(
            f"  not in fvcore's total either: {len(dead)} operators whose results never reach the output "
            f"(branches the V1 head does not read; PyTorch still runs them, TorchScript's trace drops them): "
            f"{report.untraced_flops:,} flops"
        )
    if report.attention_macs:
        lines.append(f"attention: {report.attention_macs:,} multiply-adds of the window-attention matrix products "
                     "(q @ k^T, attn @ v), not Conv2d/Linear, so not in the paper figure")
    written = ("elements written by the forward pass" if report.arch == "hrnet" else
               "elements of the Conv2d, Linear and matmul outputs (fvcore's activation count)")
    lines.append(
        f"activations: {report.activations:,} {written} = "
        f"{report.activation_mib(dtype='float32'):.1f} MiB at float32, {report.activation_mib(dtype='bfloat16'):.1f} MiB "
        f"at bfloat16 (batch {report.batch})"
    )
    lines += ["", f"by {key} ({BY_HELP[key]}); shares of the totals:", format_view(report, key)]
    return "\n".join(lines)


def run(args) -> int:
    cfg = hc.load_config(args.config)
    if args.fusion:
        cfg = cfg.with_fusion(args.fusion)
    if args.batch <= 0:
        raise AnalysisError(f"--batch: must be a positive integer, got {args.batch}")
    report = analyze(cfg, tuple(args.input_size) if args.input_size else None, backend=args.backend, batch=args.batch)
    prof = roof = None
    if args.profile:
        from analysis.complexity.profiler import format_profile, profile
        from analysis.complexity.roofline import format_roofline, measured

        mode = args.profile_mode or ("branch" if args.by == "branch" else "stage")
        if args.engine == "torch":  # the roofline counts PyTorch's operators: not onnxruntime's
            prof, roof = measured(cfg, device=args.device, batch=args.batch, mode=mode, warmup=args.warmup,
                                  iters=args.iters, input_hw=report.input_hw, fast=args.fast)
        else:
            prof = profile(cfg, device=args.device, batch_sizes=(args.batch,), mode=mode, warmup=args.warmup,
                           iters=args.iters, input_hw=report.input_hw, engine=args.engine, fast=args.fast)
    if args.json:
        out = report.to_json_dict()
        out["view"] = args.by
        if prof is not None:
            out["profile"] = frame_records(prof)
        if roof is not None:
            out["roofline"] = {"peak": asdict(roof.peak), "parts": frame_records(roof.parts),
                               "groups": frame_records(roof.grouped), "reading": roof.text}
        print(json.dumps(out))
        return 0
    print(format_report(report, args.by))
    if prof is not None:
        print()
        print(f"measured on {prof['device'].iloc[0]} ({prof['dtype'].iloc[0]}), median of {prof['iters'].iloc[0]} "
              f"iterations; peak memory needs CUDA:")
        print(format_profile(prof))
    if roof is not None:
        print()
        print(f"achieved GFLOP/s (2 x paper multiply-adds / 1e9) and % of peak per "
              f"{'branch' if mode == 'branch' else 'stage'}; {roof.peak.describe()}; op calls, MiB read / written "
              "(every operator's inputs and outputs, no cache reuse) and FLOP per byte from one counted pass:")
        print(format_roofline(roof.grouped))
        print()
        print(roof.text)
    return 0
