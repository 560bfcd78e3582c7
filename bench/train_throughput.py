"""Training throughput of pose HRNet-W32 256x192 on the current device, three ways in one run:

  eager fp32                 the model as built, float32, default memory format
  bf16 + channels_last       autocast to bfloat16 and NHWC tensors (the ablation's default on CUDA)
  torch.compile              the bf16 + channels_last model compiled with torch.compile

Each mode runs full training steps (forward, the weighted heatmap MSE of the ablation, backward, Adam)
on random images and targets of the right shapes, so data loading is not measured. Prints images/s
(median over the timed steps) and peak memory: ``torch.cuda.max_memory_allocated`` on CUDA, the
process's peak resident set on CPU (cumulative, so only the first mode's figure is its own).

    python bench/train_throughput.py [--batch 32] [--steps 20] [--warmup 5] [--modes eager,bf16,compile]

On CPU the defaults shrink to batch 2, 3 timed steps and 1 warm-up step: bf16 autocast there runs
through the CPU's bf16 kernels and torch.compile needs a C++ compiler, so the figures only show that
each path runs; the comparison that matters is on a GPU.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

import hrnet_core as hc  # noqa: E402
from analysis.ablation.train import init_by_name, train_step  # noqa: E402
from hrnet_core.device import device_label, resolve_device  # noqa: E402

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "pose_hrnet_w32_256x192.yaml"
MODES = ("eager", "bf16", "compile")


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _peak_mib(dev: torch.device) -> float:
    if dev.type == "cuda":
        return torch.cuda.max_memory_allocated(dev) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_mode(mode: str, cfg, dev: torch.device, batch: int, steps: int, warmup: int) -> dict:
    torch.manual_seed(0)
    model = init_by_name(hc.build_model(cfg, init="default"), 0).to(dev).train()
    nhwc = mode in ("bf16", "compile")
    if nhwc:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    h, w = cfg.input_hw
    x = torch.randn(batch, 3, h, w, device=dev)
    if nhwc:
        x = x.contiguous(memory_format=torch.channels_last)
    target = torch.rand(batch, cfg.head.outputs, h // 4, w // 4, device=dev)
    weight = torch.ones(batch, cfg.head.outputs, 1, device=dev)

    net = torch.compile(model) if mode == "compile" else model

    def step():
        return train_step(net, opt, x, target, weight, amp=nhwc)

    fn = step
    if dev.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)
    t0 = time.perf_counter()
    for _ in range(warmup):
        fn()
    _sync(dev)
    warm_s = time.perf_counter() - t0
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        fn()
        _sync(dev)
        times.append(time.perf_counter() - t)
    med = statistics.median(times)
    return {"mode": mode, "images_per_s": batch / med, "step_ms": 1000 * med, "warmup_s": warm_s,
            "peak_mib": _peak_mib(dev)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--modes", default=",".join(MODES))
    args = p.parse_args(argv)
    dev = resolve_device(args.device)
    cuda = dev.type == "cuda"
    batch = args.batch or (32 if cuda else 2)
    steps = args.steps or (20 if cuda else 3)
    warmup = args.warmup or (5 if cuda else 1)
    if cuda:
        torch.backends.cudnn.benchmark = True
    else:
        torch.set_flush_denormal(True)  # the N(0, 0.001) init makes subnormal gradients: slow on CPUs
    cfg = hc.load_config(CONFIG)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    print(f"pose HRNet-W32 {cfg.input_hw[0]}x{cfg.input_hw[1]} training step (forward, loss, backward, Adam) "
          f"on {device_label(dev)}; torch {torch.__version__}; batch {batch}, {warmup} warm-up + {steps} timed "
          f"steps{'' if cuda else f', {torch.get_num_threads()} CPU threads'}", flush=True)
    print(f"{'mode':<24} {'images/s':>10} {'step ms':>10} {'warm-up s':>10} {'peak MiB':>10}")
    labels = {"eager": "eager fp32", "bf16": "bf16 + channels_last", "compile": "torch.compile (bf16+NHWC)"}
    for mode in modes:
        if mode not in MODES:
            print(f"{mode}: unknown mode; expected {', '.join(MODES)}", file=sys.stderr)
            return 2
        try:
            r = run_mode(mode, cfg, dev, batch, steps, warmup)
        except Exception as err:  # e.g. torch.compile without a compiler: report, go on
            first = (str(err).strip().splitlines() or [""])[0][:160]
            print(f"{labels[mode]:<24} failed: {err.__class__.__name__}: {first}", flush=True)
            continue
        print(f"{labels[mode]:<24} {r['images_per_s']:>10.3g} {r['step_ms']:>10.1f} {r['warmup_s']:>10.1f} "
              f"{r['peak_mib']:>10.0f}", flush=True)
    if not cuda:
        print("peak MiB on CPU: the process's peak resident set so far (cumulative over the modes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
