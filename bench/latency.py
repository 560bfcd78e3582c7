"""Measured latency: the inference fast path against the official structure, and the older reports.

Default: **paths side by side** on the CPU (or the GPU where there is one), pose W32 256x192 (``--config``),
batch 1 and 8, every path timed in turn within each round (interleaved, one process) so load from other
processes falls on all of them alike:

- ``official_eager_fp32``: the official structure (``hrnet_core.build_model``), eager, float32, ``no_grad``
  (what the official test scripts run);
- ``fast_fp32``: ``hrnet_core.fast_path.fast_model`` (BatchNorm folded, channels_last) under
  ``torch.inference_mode``;
- ``fast_fp32_frozen``: the same copy as a frozen TorchScript trace (``fast_model(..., freeze=True)``);
- ``fast_bf16``: the fast copy with bf16 autocast, where the CPU (AVX512-BF16 / AMX) or GPU has bf16;
- ``compiled``: the fast copy through ``torch.compile`` (inductor, ``freezing``); compile time printed apart;
- ``onnxruntime``: the official structure exported to ONNX (``analysis.export.formats``), where installed (CPU).

Each row: median and p90 ms over the rounds, and max |y - official_eager_fp32| on the same input.
``--ablate`` adds one row per ingredient (inference_mode alone, channels_last alone, folding alone). ``--json`` prints one JSON object
``{"device", "threads", "load_average", "rows": [{"path", "batch", "median_ms", "p90_ms", "max_abs_diff"}]}``.

``--report`` prints what this script printed before the fast path: the profiler part by part, our
``cls_hrnet_w32`` against timm's ``hrnet_w32`` with the same weights (eager fp32, then channels_last + bf16;
batch 64 reduced to ``--cpu-batch`` on the CPU; timm imported lazily, skipped with the reason where it is
missing), and torch against onnxruntime (``--engines-only`` for that alone).

    python bench/latency.py [--config C] [--rounds 10] [--json] [--ablate] [--no-compile] [--no-onnx]
    python bench/latency.py --report [--cpu-iters 3] [--gpu-iters 50] [--cpu-batch 4] [--skip-cpu-profile]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

import hrnet_core as hc  # noqa: E402
from analysis.complexity.profiler import format_profile, profile  # noqa: E402
from hrnet_core.device import device_label  # noqa: E402
from hrnet_core.fast_path import bf16_supported, fast_inference, fast_inputs, fast_model, max_abs_diff  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = ("eager fp32", "channels_last + bf16 autocast")

# Our cls state_dict -> timm's hrnet names. Both follow the official cls_hrnet.py (conv1/bn1/conv2/bn2,
# layer1, transitionK, stageK.M.branches/fuse_layers, incre_modules, downsamp_modules, final_layer,
# classifier), and timm's extra modules (act1, Upsample in fuse_layers, global_pool) hold no parameters,
# so the mapping is the identity; it is spelled out here so any rename on either side shows up as missing
# or unexpected keys in the strict load instead of silently loading nothing.
TIMM_RENAMES: tuple[tuple[str, str], ...] = ()


def to_timm_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        for ours, theirs in TIMM_RENAMES:
            if key.startswith(ours):
                key = theirs + key[len(ours):]
                break
        out[key] = value
    return out


def load_timm(ours: torch.nn.Module):
    """timm's hrnet_w32 with our weights, or (None, reason)."""
    try:
        import timm
    except Exception as err:  # ImportError, or torchvision failing to load under a CPU torch
        return None, f"timm is not importable here ({err.__class__.__name__}: {str(err).splitlines()[0][:160]})"
    try:
        model = timm.create_model("hrnet_w32", pretrained=False, num_classes=1000)
    except Exception as err:
        return None, f"timm.create_model('hrnet_w32') failed ({err.__class__.__name__}: {err})"
    mapped = to_timm_state_dict(ours.state_dict())
    own = model.state_dict()
    missing, unexpected = sorted(set(own) - set(mapped)), sorted(set(mapped) - set(own))
    shaped = [k for k in own if k in mapped and tuple(own[k].shape) != tuple(mapped[k].shape)]
    if missing or unexpected or shaped:
        return None, (f"state_dict names differ from timm {timm.__version__}: {len(missing)} missing "
                      f"{missing[:3]}, {len(unexpected)} unexpected {unexpected[:3]}, {len(shaped)} mis-shaped {shaped[:3]}")
    model.load_state_dict(mapped, strict=True)
    return model.eval(), f"timm {timm.__version__}, {len(mapped)} tensors loaded strictly"


def time_forward(model, x, device: torch.device, setting: str, warmup: int, iters: int) -> float:
    """Median ms of ``model(x)`` under ``setting`` (CUDA events on a GPU, perf_counter on the CPU)."""
    bf16 = setting != "eager fp32"
    if bf16:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    ctx = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    times = []
    with torch.inference_mode(), ctx:
        for i in range(warmup + iters):
            if device.type == "cuda":
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                model(x)
                end.record()
                torch.cuda.synchronize(device)
                ms = start.elapsed_time(end)
            else:
                t = time.perf_counter()
                model(x)
                ms = (time.perf_counter() - t) * 1e3
            if i >= warmup:
                times.append(ms)
    if bf16:
        model.to(memory_format=torch.contiguous_format)
    return statistics.median(times)


def compare_with_timm(device: torch.device, batches: tuple[int, ...], warmup: int, iters: int) -> None:
    cfg = hc.load_config(ROOT / "configs" / "cls_hrnet_w32.yaml")
    torch.manual_seed(0)
    ours = hc.build_model(cfg).eval()
    theirs, note = load_timm(ours)
    label = device_label(device)
    print(f"\n== whole model: cls_hrnet_w32 (ours) vs timm hrnet_w32, 224x224, on {label} ==")
    if theirs is None:
        print(f"timm comparison skipped: {note}")
    else:
        print(f"same weights: {note}")
    ours = ours.to(device)
    if theirs is not None:
        theirs = theirs.to(device)
        x = torch.randn(2, 3, 224, 224, device=device)
        with torch.inference_mode():
            diff = (ours(x) - theirs(x)).abs().max().item()
        print(f"outputs, float32, batch 2: max |ours - timm| = {diff:.3e}")
    print(f"{'setting':<32}{'batch':>6}{'ours ms':>11}{'ours img/s':>12}{'timm ms':>11}{'timm img/s':>12}{'ours/timm':>11}")
    for setting in SETTINGS:
        for b in batches:
            x = torch.randn(b, 3, 224, 224, device=device)
            t_ours = time_forward(ours, x, device, setting, warmup, iters)
            line = f"{setting:<32}{b:>6}{t_ours:>11.2f}{1e3 * b / t_ours:>12.1f}"
            if theirs is not None:
                t_timm = time_forward(theirs, x, device, setting, warmup, iters)
                line += f"{t_timm:>11.2f}{1e3 * b / t_timm:>12.1f}{t_ours / t_timm:>11.3f}"
            else:
                line += f"{'-':>11}{'-':>12}{'-':>11}"
            print(line, flush=True)


def compare_engines(config: str, batches: tuple[int, ...], warmup: int, iters: int) -> None:
    """Torch eager vs onnxruntime on the CPU, whole model, median ms per batch size."""
    import tempfile

    from analysis.export.formats import export, onnxruntime_session

    cfg = hc.load_config(config)
    torch.manual_seed(0)
    model = hc.build_model(cfg, init="default").eval()
    threads = torch.get_num_threads()
    h, w = cfg.input_hw
    print(f"\n== engines on cpu: {cfg.name} {h}x{w}, whole model, float32, {threads} threads, median of {iters} ==")
    with tempfile.TemporaryDirectory() as tmp:
        report = export(cfg, "onnx", Path(tmp) / "model.onnx", dynamic_batch=True, model=model)
        print(f"export: {report.to_text()}")
        session = onnxruntime_session(report.path, threads)
        print(f"{'batch':>6}{'torch ms':>11}{'torch img/s':>13}{'ort ms':>10}{'ort img/s':>11}{'ort/torch':>11}"
              f"{'max |diff|':>12}")
        for b in batches:
            x = torch.randn(b, 3, h, w)
            t_torch = time_forward(model, x, torch.device("cpu"), "eager fp32", warmup, iters)
            feed = {"input": x.numpy()}
            times = []
            for i in range(warmup + iters):
                t = time.perf_counter()
                y = session.run(None, feed)[0]
                if i >= warmup:
                    times.append((time.perf_counter() - t) * 1e3)
            t_ort = statistics.median(times)
            with torch.inference_mode():
                diff = float((model(x) - torch.from_numpy(y)).abs().max())
            print(f"{b:>6}{t_torch:>11.1f}{1e3 * b / t_torch:>13.1f}{t_ort:>10.1f}{1e3 * b / t_ort:>11.1f}"
                  f"{t_ort / t_torch:>11.3f}{diff:>12.2e}", flush=True)


PATHS = ("official_eager_fp32", "fast_fp32", "fast_fp32_frozen", "fast_bf16", "compiled", "onnxruntime")


@dataclass
class Path_:
    """One way of running the model: ``run(x)`` on an input already in ``layout(x)``."""

    name: str
    run: Callable
    layout: Callable = lambda x: x
    note: str = ""
    times: dict = field(default_factory=dict)


def _timed(fn, x, device: torch.device) -> tuple[float, object]:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t = time.perf_counter()
    y = fn(x)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - t) * 1e3, y


def _in(ctx_factory, fn):
    def run(x):
        with ctx_factory():
            return fn(x)
    return run


def build_paths(cfg, model, device: torch.device, compile_: bool, onnx: bool, ablate: bool, tmp: str) -> list[Path_]:
    """The paths of the module docstring for ``model`` (built from ``cfg``, eval, on ``device``)."""
    cl = fast_inputs
    fast = fast_model(model)
    paths = [
        Path_("official_eager_fp32", _in(torch.no_grad, model)),
        Path_("fast_fp32", _in(lambda: fast_inference(device), fast), cl),
    ]
    # traced at the config's own size: a trace keeps some shapes (HRFormer's window partition) as constants
    paths.append(Path_("fast_fp32_frozen", _in(torch.no_grad, fast_model(model, freeze=True,
                                                                         input_hw=tuple(cfg.input_hw))), cl,
                       note="torch.jit.freeze of the fast copy traced at the config's input size"))
    if bf16_supported(device):
        paths.append(Path_("fast_bf16", _in(lambda: fast_inference(device, bf16=True), fast), cl))
    if compile_:
        compiled = fast_model(model, compile=True)
        paths.append(Path_("compiled", _in(lambda: fast_inference(device), compiled), cl,
                           note="torch.compile(inductor, freezing) of the fast copy"))
    if onnx and device.type == "cpu":
        try:
            from analysis.export.formats import export, onnxruntime_session
        except ImportError as err:
            print(f"onnxruntime path skipped: {err}", file=sys.stderr)
        else:
            report = export(cfg, "onnx", Path(tmp) / "model.onnx", dynamic_batch=True, model=model)
            session = onnxruntime_session(report.path, torch.get_num_threads())
            paths.append(Path_("onnxruntime", lambda x: torch.from_numpy(session.run(None, {"input": x.numpy()})[0])))
    if ablate:
        official_cl = copy.deepcopy(model).to(memory_format=torch.channels_last)
        folded = fast_model(model, channels_last=False)
        paths += [
            Path_("ablate_inference_mode", _in(torch.inference_mode, model), note="official structure, inference_mode"),
            Path_("ablate_channels_last", _in(torch.inference_mode, official_cl), cl,
                  note="official structure, channels_last, inference_mode"),
            Path_("ablate_fold_only", _in(torch.inference_mode, folded), note="BatchNorm folded, NCHW, inference_mode"),
        ]
    return paths


def compare_paths(config: str, batches: tuple[int, ...], rounds: int, warmup: int, compile_: bool, onnx: bool,
                  ablate: bool, device: torch.device) -> dict:
    """Interleaved timing of every path at every batch size; the JSON object of the module docstring."""
    import tempfile

    cfg = hc.load_config(config)
    torch.manual_seed(0)
    model = hc.build_model(cfg, init="default").eval().to(device)
    h, w = cfg.input_hw
    gen = torch.Generator().manual_seed(0)
    inputs = {b: torch.randn(b, 3, h, w, generator=gen).to(device) for b in batches}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = build_paths(cfg, model, device, compile_, onnx, ablate, tmp)
        refs, diffs, compile_s = {}, {}, {}
        for b in batches:
            for p in paths:
                x = p.layout(inputs[b])
                for i in range(warmup):
                    ms, y = _timed(p.run, x, device)
                    if i == 0 and p.name == "compiled":
                        compile_s[b] = ms / 1e3
                if p.name == "official_eager_fp32":
                    refs[b] = y
                diffs[(p.name, b)] = max_abs_diff(refs[b], y)
        for _ in range(rounds):
            for b in batches:
                for p in paths:
                    x = p.layout(inputs[b])
                    p.times.setdefault(b, []).append(_timed(p.run, x, device)[0])
        for b in batches:
            for p in paths:
                t = sorted(p.times[b])
                row = {"path": p.name, "batch": b, "median_ms": round(statistics.median(t), 3),
                       "p90_ms": round(t[min(len(t) - 1, int(round(0.9 * (len(t) - 1))))], 3),
                       "max_abs_diff": float(f"{diffs[(p.name, b)]:.3e}")}
                if p.name == "compiled":
                    row["compile_s"] = round(compile_s[b], 1)
                if p.note:
                    row["note"] = p.note
                rows.append(row)
    return {"device": device_label(device), "threads": torch.get_num_threads(), "config": cfg.name,
            "input_hw": [h, w], "rounds": rounds, "load_average": [round(v, 2) for v in os.getloadavg()],
            "torch": torch.__version__, "cpu_bf16": bf16_supported(torch.device("cpu")), "rows": rows}


def format_paths(result: dict) -> str:
    """The text table of ``compare_paths``: speed-up against official_eager_fp32 at the same batch."""
    base = {r["batch"]: r["median_ms"] for r in result["rows"] if r["path"] == "official_eager_fp32"}
    h, w = result["input_hw"]
    lines = [f"{result['config']} {h}x{w} on {result['device']}, {result['threads']} threads, torch {result['torch']}, "
             f"median / p90 of {result['rounds']} interleaved rounds; load average {result['load_average']}",
             f"{'path':<24}{'batch':>6}{'median ms':>11}{'p90 ms':>9}{'img/s':>8}{'speed-up':>10}{'max |diff|':>12}"]
    for r in result["rows"]:
        lines.append(f"{r['path']:<24}{r['batch']:>6}{r['median_ms']:>11.1f}{r['p90_ms']:>9.1f}"
                     f"{1e3 * r['batch'] / r['median_ms']:>8.1f}{base[r['batch']] / r['median_ms']:>9.2f}x"
                     f"{r['max_abs_diff']:>12.2e}" + (f"   compile {r['compile_s']} s" if "compile_s" in r else ""))
    notes = {r["path"]: r["note"] for r in result["rows"] if "note" in r}
    lines += [f"  {k}: {v}" for k, v in notes.items()]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "pose_hrnet_w32_256x192.yaml"),
                    help="the model to time (default pose W32 256x192)")
    ap.add_argument("--json", action="store_true", help="print one JSON object (paths mode)")
    ap.add_argument("--rounds", type=int, default=10, help="timed rounds per path and batch (paths mode)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed calls per path and batch (paths mode)")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    ap.add_argument("--no-compile", action="store_true", help="leave out the compiled path (a minute per batch size)")
    ap.add_argument("--no-onnx", action="store_true", help="leave out the onnxruntime path")
    ap.add_argument("--ablate", action="store_true", help="add one row per fast-path ingredient")
    ap.add_argument("--report", action="store_true", help="the older report: profile, timm, engines")
    ap.add_argument("--cpu-iters", type=int, default=3)
    ap.add_argument("--gpu-iters", type=int, default=50)
    ap.add_argument("--cpu-batch", type=int, default=4, help="stands in for batch 64 on the CPU")
    ap.add_argument("--skip-cpu-profile", action="store_true")
    ap.add_argument("--engines-only", action="store_true", help="only the torch vs onnxruntime comparison")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.engines_only:
        compare_engines(args.config, (1, 8), warmup=1, iters=args.cpu_iters)
        return 0
    if not args.report:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        result = compare_paths(args.config, tuple(args.batches), args.rounds, args.warmup, not args.no_compile,
                               not args.no_onnx, args.ablate, device)
        print(json.dumps(result) if args.json else format_paths(result))
        return 0
    cuda = torch.cuda.is_available()
    print(f"torch {torch.__version__}; CUDA: {device_label(torch.device('cuda')) if cuda else 'not available'}; "
          f"CPU threads {torch.get_num_threads()}")
    if cuda:
        print(f"eager fp32 on CUDA uses PyTorch's defaults: cudnn.allow_tf32={torch.backends.cudnn.allow_tf32}, "
              f"matmul precision {torch.get_float32_matmul_precision()!r}")

    if not args.skip_cpu_profile:
        print(f"\n== profile on cpu: {Path(args.config).stem}, per stage, batch 1, float32, "
              f"median of {args.cpu_iters} ==")
        print(format_profile(profile(args.config, device="cpu", mode="stage", warmup=1, iters=args.cpu_iters)))
    if cuda:
        for mode in ("stage", "branch"):
            df = profile(args.config, device="cuda", batch_sizes=(1, 64), mode=mode, warmup=10, iters=args.gpu_iters)
            print(f"\n== profile on {df['device'].iloc[0]}: per {mode}, {df['dtype'].iloc[0]}, median of "
                  f"{args.gpu_iters} after 10 warm-up ==")
            print(format_profile(df))
    else:
        print("\nprofile on CUDA skipped: no CUDA GPU on this machine")

    print(f"\nnote: on the CPU, batch 64 is reduced to {args.cpu_batch} and {args.cpu_iters} timed iterations "
          "keep the run short")
    compare_with_timm(torch.device("cpu"), (1, args.cpu_batch), warmup=1, iters=args.cpu_iters)
    compare_engines(args.config, (1, 8), warmup=1, iters=args.cpu_iters)
    if cuda:
        compare_with_timm(torch.device("cuda"), (1, 64), warmup=10, iters=args.gpu_iters)
    return 0


if __name__ == "__main__":
    sys.exit(main())
