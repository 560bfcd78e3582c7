"""Measured latency: the profiler part by part, and the whole model against timm's ``hrnet_w32``.

1. ``analysis.complexity.profiler.profile`` on the CPU (pose W32 256x192, per stage, batch 1) and, where CUDA is
   available, on the GPU (per stage and per branch, batch 1 and 64; CUDA events after warm-up, bf16
   autocast + channels_last as ``hrnet_core.device`` sets them).
2. The whole classification network: our ``cls_hrnet_w32`` preset against ``timm``'s ``hrnet_w32`` with
   the same weights loaded (our state_dict mapped to timm's names, loaded strictly, outputs compared),
   eager float32 first, then channels_last + bf16 autocast, at batch 1 and 64, with the ratio ours / timm.
   On the CPU the batch of 64 is reduced (``--cpu-batch``, printed) to keep the run short. timm is
   imported lazily: where it is missing (it needs torchvision, which has no CPU build here) the
   comparison prints ``timm comparison skipped: <reason>`` and our own figures still come out.
3. Engines side by side on the CPU: pose W32 256x192 (``--config``), the whole model in PyTorch eager float32
   and the same weights exported to ONNX (``analysis.export.formats``, dynamic batch) in onnxruntime, batch 1 and 8,
   with max |torch - onnxruntime| on the timed input.

    python bench/latency.py [--cpu-iters 3] [--gpu-iters 50] [--cpu-batch 4] [--skip-cpu-profile] [--engines-only]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

import hrnet_core as hc  # noqa: E402
from analysis.complexity.profiler import format_profile, profile  # noqa: E402
from hrnet_core.device import device_label  # noqa: E402

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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "pose_hrnet_w32_256x192.yaml"),
                    help="config for the part-by-part profile")
    ap.add_argument("--cpu-iters", type=int, default=3)
    ap.add_argument("--gpu-iters", type=int, default=50)
    ap.add_argument("--cpu-batch", type=int, default=4, help="stands in for batch 64 on the CPU")
    ap.add_argument("--skip-cpu-profile", action="store_true")
    ap.add_argument("--engines-only", action="store_true", help="only the torch vs onnxruntime comparison")
    args = ap.parse_args(argv)
    if args.engines_only:
        compare_engines(args.config, (1, 8), warmup=1, iters=args.cpu_iters)
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
