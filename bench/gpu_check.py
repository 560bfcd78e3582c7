"""One prepared GPU check: every CUDA path of the project in at most 8 minutes on one GPU, a table at the end.

Checks, in order (each timed, each a row of the final table: ok / FAIL with the error / skipped with why):

1. ``build_bf16_cl``: build pose W32 256x192, forward at batch 64 in bf16 autocast + channels_last; max |diff|
   against the float32 forward (TF32 off).
2. ``fast_path``: ``hrnet_core.fast_path.fast_model`` on CUDA (BatchNorm folded, channels_last), fp32 max |diff|
   (<= 1e-4 expected with TF32 off) and bf16 ms at batch 64.
3. ``compile``: ``torch.compile`` of the fast copy, bf16, batch 64: compile s, ms, images/s.
4. ``cuda_graphs``: batch-1 latency of the fast copy captured in a CUDA graph, against eager.
5. ``feature_maps``: ``analysis.features.capture`` on cuda for a pose image.
6. ``profiler``: ``analysis.complexity.profiler.profile`` per branch with CUDA events at batch 1 and 64, and the
   roofline (``analysis.complexity.roofline``: % of a measured bf16 matmul peak).
7. ``train_quick_bf16``: one epoch's steps of the ``quick`` recipe (its model, batch, Adam, bf16 autocast,
   channels_last) on random tensors in place of rendered images (the GPU, not the data pipeline): images/s,
   peak memory.
8. ``ddp_nccl``: DistributedDataParallel with one process over NCCL (localhost), a few training steps,
   gradients checked against the same steps without DDP.
9. ``timm``: timm's ``hrnet_w32`` against our ``cls_hrnet_w32`` with the same weights: images/s at batch 64
   bf16 (ours compiled fast path; goal >= 1.25x timm's) and batch-1 latency (ours CUDA graph; goal <= 0.5x),
   where timm is installed.

The device machine has no fvcore or streamlit: nothing here imports them (the modules a check needs are
imported when it runs; ``--dry-run`` imports them all, and ``tests/test_gpu_check.py`` does so with fvcore and
streamlit blocked). Without CUDA it runs as a dry run: it lists what it would check and exits 0.

    python bench/gpu_check.py [--dry-run] [--budget-s 450] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

POSE = ROOT / "configs" / "pose_hrnet_w32_256x192.yaml"
CLS = ROOT / "configs" / "cls_hrnet_w32.yaml"


@dataclass(frozen=True)
class Check:
    name: str
    what: str
    needs: tuple[str, ...]  # project modules the check imports when it runs
    fn: Callable[[torch.device], str]


def _ms(fn, iters: int = 20, warmup: int = 5) -> float:
    """Median CUDA-event milliseconds of ``fn()``."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    times.sort()
    return times[len(times) // 2]


def _pose(dev):
    import hrnet_core as hc

    cfg = hc.load_config(POSE)
    torch.manual_seed(0)
    return cfg, hc.build_model(cfg, init="default").eval().to(dev)


def _no_tf32():
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False


def check_build(dev) -> str:
    _no_tf32()
    cfg, model = _pose(dev)
    x = torch.randn(64, 3, *cfg.input_hw, device=dev)
    with torch.inference_mode():
        ref = model(x)
        cl = model.to(memory_format=torch.channels_last)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            y = cl(x.contiguous(memory_format=torch.channels_last))
            ms = _ms(lambda: cl(x.contiguous(memory_format=torch.channels_last)))
    diff = float((y.float() - ref).abs().max())
    return f"bf16+cl batch 64: {ms:.2f} ms ({64e3 / ms:.0f} img/s), max |bf16 - fp32| {diff:.2e} (|y| max {float(ref.abs().max()):.2e})"


def check_fast_path(dev) -> str:
    from hrnet_core.fast_path import fast_inference, fast_inputs, fast_model, max_abs_diff

    _no_tf32()
    cfg, model = _pose(dev)
    fast = fast_model(model)
    x = torch.randn(64, 3, *cfg.input_hw, device=dev)
    with torch.inference_mode():
        ref = model(x)
        diff = max_abs_diff(ref, fast(fast_inputs(x)))
        official = _ms(lambda: model(x))
    with fast_inference(dev, bf16=True):
        xc = fast_inputs(x)
        ms = _ms(lambda: fast(xc))
    status = "within 1e-4" if diff <= 1e-4 else "ABOVE 1e-4"
    return f"fp32 max |diff| {diff:.2e} ({status}); official fp32 {official:.2f} ms, fast bf16 {ms:.2f} ms at batch 64"


def check_compile(dev) -> str:
    from hrnet_core.fast_path import fast_inference, fast_inputs, fast_model

    cfg, model = _pose(dev)
    compiled = fast_model(model, compile=True)
    x = fast_inputs(torch.randn(64, 3, *cfg.input_hw, device=dev))
    with fast_inference(dev, bf16=True):
        t = time.perf_counter()
        compiled(x)
        torch.cuda.synchronize()
        took = time.perf_counter() - t
        ms = _ms(lambda: compiled(x))
    return f"compiled in {took:.0f} s; bf16 batch 64 {ms:.2f} ms ({64e3 / ms:.0f} img/s)"


def _graphed(fn, x):
    """``fn`` captured in a CUDA graph on the static input ``x``; returns replay() -> output."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            fn(x)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = fn(x)

    def replay():
        graph.replay()
        return out
    return replay


def check_cuda_graphs(dev) -> str:
    from hrnet_core.fast_path import fast_inference, fast_inputs, fast_model

    cfg, model = _pose(dev)
    fast = fast_model(model)
    x = fast_inputs(torch.randn(1, 3, *cfg.input_hw, device=dev))
    with fast_inference(dev, bf16=True):
        eager = _ms(lambda: fast(x), iters=50)
        replay = _graphed(fast, x)
        graphed = _ms(replay, iters=50)
        diff = float((replay().float() - fast(x).float()).abs().max())
    return f"batch 1 bf16: eager {eager:.2f} ms, CUDA graph {graphed:.2f} ms ({eager / graphed:.1f}x), |graph - eager| {diff:.1e}"


def check_feature_maps(dev) -> str:
    import numpy as np

    from analysis.features import capture

    cfg, model = _pose(dev)
    image = (np.random.default_rng(0).random((256, 192, 3)) * 255).astype(np.uint8)
    cap = capture(model, cfg, image, device="cuda")
    return f"{len(cap.branches)} maps on {cap.device}, forward {1e3 * cap.timings['forward_s']:.1f} ms"


def check_profiler(dev) -> str:
    from analysis.complexity.profiler import profile
    from analysis.complexity.roofline import measured

    cfg, model = _pose(dev)
    df = profile(cfg, device="cuda", batch_sizes=(1, 64), mode="branch", model=model, warmup=5, iters=20)
    total = df[df["part"] == "total"].set_index("batch")["median_ms"]
    _, rf = measured(cfg, device="cuda", batch=64, mode="branch", model=model, warmup=5, iters=20)
    worst = rf.grouped.loc[rf.grouped["pct_of_peak"].idxmin()]
    return (f"CUDA events: {total[1]:.2f} ms at batch 1, {total[64]:.2f} ms at 64; {rf.peak.describe()}; "
            f"lowest: {worst['part']} at {worst['pct_of_peak']:.1f} % of peak")


def _train_setup(dev):
    import hrnet_core as hc
    from analysis.ablation.recipes import load_recipe
    from analysis.ablation.runner import resolve_base

    recipe = load_recipe("quick")
    cfg = resolve_base(hc.load_config(POSE), recipe)
    torch.manual_seed(0)
    model = hc.build_model(cfg).to(dev).train()
    if recipe.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return recipe, cfg, model


def _batch(cfg, n, dev, gen):
    h, w = cfg.input_hw
    x = torch.randn(n, 3, h, w, device=dev, generator=gen).contiguous(memory_format=torch.channels_last)
    target = torch.rand(n, cfg.head.outputs, h // 4, w // 4, device=dev, generator=gen)
    weight = torch.ones(n, cfg.head.outputs, 1, device=dev)
    return x, target, weight


def check_train(dev) -> str:
    from analysis.ablation.step import train_step

    recipe, cfg, model = _train_setup(dev)
    opt = torch.optim.Adam(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    gen = torch.Generator(device=dev).manual_seed(0)
    steps = recipe.builtin.train // recipe.batch_size
    batches = [_batch(cfg, recipe.batch_size, dev, gen) for _ in range(4)]
    torch.cuda.reset_peak_memory_stats(dev)
    train_step(model, opt, *batches[0], amp=recipe.bf16)  # warm-up (cuDNN autotuning)
    torch.cuda.synchronize()
    t = time.perf_counter()
    for i in range(steps):
        loss = train_step(model, opt, *batches[i % len(batches)], amp=recipe.bf16)
    torch.cuda.synchronize()
    took = time.perf_counter() - t
    peak = torch.cuda.max_memory_allocated(dev) / 2**20
    return (f"quick recipe, {steps} steps of batch {recipe.batch_size} (one epoch of {recipe.builtin.train} images), "
            f"bf16={recipe.bf16}: {steps * recipe.batch_size / took:.0f} img/s, {took:.1f} s, peak {peak:.0f} MiB, "
            f"final loss {float(loss):.2e}")


def check_ddp(dev) -> str:
    import copy

    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    from analysis.ablation.step import train_step

    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29517")
    dist.init_process_group("nccl", rank=0, world_size=1)
    try:
        recipe, cfg, model = _train_setup(dev)
        twin = copy.deepcopy(model)
        ddp = DDP(model, device_ids=[dev.index or 0], find_unused_parameters=True)
        gen = torch.Generator(device=dev).manual_seed(0)
        batch = _batch(cfg, 8, dev, gen)
        o1 = torch.optim.SGD(ddp.parameters(), lr=0.01)
        o2 = torch.optim.SGD(twin.parameters(), lr=0.01)
        for _ in range(3):
            train_step(ddp, o1, *batch, amp=False)
            train_step(twin, o2, *batch, amp=False)
        diff = max(float((a - b).abs().max()) for a, b in zip(model.parameters(), twin.parameters()))
        return f"NCCL {'.'.join(map(str, torch.cuda.nccl.version()))}, world 1: 3 steps, max |DDP - plain| weight {diff:.1e}"
    finally:
        dist.destroy_process_group()


def check_timm(dev) -> str:
    try:
        import timm
    except Exception as err:
        return f"skipped: timm not importable ({err.__class__.__name__})"
    import hrnet_core as hc
    from hrnet_core.fast_path import fast_inference, fast_inputs, fast_model

    cfg = hc.load_config(CLS)
    torch.manual_seed(0)
    ours = hc.build_model(cfg, init="default").eval().to(dev)
    theirs = timm.create_model("hrnet_w32", pretrained=False, num_classes=1000)
    theirs.load_state_dict(ours.state_dict(), strict=True)
    theirs = theirs.eval().to(dev).to(memory_format=torch.channels_last)
    x64 = fast_inputs(torch.randn(64, 3, 224, 224, device=dev))
    x1 = fast_inputs(torch.randn(1, 3, 224, 224, device=dev))
    compiled, fast = fast_model(ours, compile=True), fast_model(ours)
    with fast_inference(dev, bf16=True):
        t_timm64 = _ms(lambda: theirs(x64))
        t_ours64 = _ms(lambda: compiled(x64))
        t_timm1 = _ms(lambda: theirs(x1), iters=50)
        t_ours1 = _ms(_graphed(fast, x1), iters=50)
    tp = t_timm64 / t_ours64
    lat = t_ours1 / t_timm1
    return (f"timm {timm.__version__}: batch 64 bf16 {64e3 / t_ours64:.0f} vs {64e3 / t_timm64:.0f} img/s = {tp:.2f}x "
            f"(goal >= 1.25x: {'met' if tp >= 1.25 else 'not met'}); batch 1 {t_ours1:.2f} vs {t_timm1:.2f} ms = "
            f"{lat:.2f}x (goal <= 0.5x: {'met' if lat <= 0.5 else 'not met'})")


CHECKS = (
    Check("build_bf16_cl", "build pose W32, forward bf16 autocast + channels_last at batch 64", ("hrnet_core",), check_build),
    Check("fast_path", "BatchNorm folded channels_last copy on CUDA: fp32 max |diff|, bf16 ms",
          ("hrnet_core.fast_path",), check_fast_path),
    Check("compile", "torch.compile of the fast copy, bf16, batch 64", ("hrnet_core.fast_path",), check_compile),
    Check("cuda_graphs", "batch-1 latency in a CUDA graph vs eager", ("hrnet_core.fast_path",), check_cuda_graphs),
    Check("feature_maps", "analysis.features.capture on cuda", ("analysis.features",), check_feature_maps),
    Check("profiler", "per-branch profile with CUDA events at batch 1 and 64, roofline vs bf16 matmul peak",
          ("analysis.complexity.profiler", "analysis.complexity.roofline"), check_profiler),
    Check("train_quick_bf16", "one epoch's steps of the quick recipe, bf16: images/s, peak memory",
          ("analysis.ablation.recipes", "analysis.ablation.runner", "analysis.ablation.step"), check_train),
    Check("ddp_nccl", "DistributedDataParallel, one process over NCCL, against plain steps",
          ("analysis.ablation.step",), check_ddp),
    Check("timm", "timm hrnet_w32 vs ours: batch-64 bf16 throughput, batch-1 latency (where timm is installed)",
          ("hrnet_core.fast_path",), check_timm),
)


def dry_run(checks) -> int:
    """List the checks and import every module they need (no GPU work); 1 if an import fails."""
    print(f"gpu_check dry run: torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}; would run:")
    failed = 0
    for c in checks:
        missing = []
        for mod in c.needs:
            try:
                importlib.import_module(mod)
            except Exception as err:
                missing.append(f"{mod} ({err.__class__.__name__}: {err})")
        failed += bool(missing)
        print(f"  {c.name:<18} {c.what}" + (f"  -- IMPORT FAILED: {'; '.join(missing)}" if missing else ""))
    print(f"{len(checks)} checks; imports {'ok' if not failed else f'failed for {failed}'}")
    return 1 if failed else 0


def run(checks, budget_s: float) -> int:
    dev = torch.device("cuda", 0)
    start = time.perf_counter()
    rows = []
    for c in checks:
        if time.perf_counter() - start > budget_s:
            rows.append((c.name, "skipped", f"time budget of {budget_s:.0f} s spent", 0.0))
            continue
        t = time.perf_counter()
        try:
            text = c.fn(dev)
            status = "skipped" if text.startswith("skipped") else "ok"
        except Exception as err:
            traceback.print_exc()
            text, status = f"{err.__class__.__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}", "FAIL"
        rows.append((c.name, status, text, time.perf_counter() - t))
        print(f"[{time.perf_counter() - start:6.1f} s] {c.name}: {status}: {text}", flush=True)
        torch.cuda.empty_cache()
    props = torch.cuda.get_device_properties(dev)
    print(f"\nGPU: {props.name}, {props.total_memory / 2**30:.0f} GiB; torch {torch.__version__}, CUDA {torch.version.cuda}, "
          f"cuDNN {torch.backends.cudnn.version()}; total {time.perf_counter() - start:.0f} s")
    print(f"{'check':<18}{'status':<9}{'s':>7}  result")
    for name, status, text, secs in rows:
        print(f"{name:<18}{status:<9}{secs:>7.1f}  {text}")
    return 0 if all(r[1] != "FAIL" for r in rows) else 1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dry-run", action="store_true", help="list the checks and import what they need; no GPU work")
    ap.add_argument("--budget-s", type=float, default=450.0, help="skip the checks left once this many s are spent")
    ap.add_argument("--only", nargs="+", choices=[c.name for c in CHECKS], help="run these checks only")
    args = ap.parse_args(argv)
    checks = [c for c in CHECKS if not args.only or c.name in args.only]
    if args.dry_run or not torch.cuda.is_available():
        if not args.dry_run:
            print("no CUDA GPU here: dry run")
        return dry_run(checks)
    return run(checks, args.budget_s)


if __name__ == "__main__":
    sys.exit(main())
