"""Training throughput: eager float32 against the ablation's default path, for the `cpu` recipe's model
and pose HRNet-W32 256x192, in one run; plus data loading against what training consumes.

The default path is what ``analysis.ablation.precision.choose_precision`` picks on this device: on
CUDA bf16 autocast + channels_last; on a CPU with bf16 instructions whichever of float32 and bf16
autocast + channels_last trains faster (timed here on real shapes), float32 elsewhere. Each figure is
full training steps (forward, the weighted heatmap MSE, backward, Adam) on one batch of real built-in
training crops. ``--compile`` adds torch.compile of the default path.

    python bench/train_throughput.py [--device auto|cpu|cuda] [--steps 3] [--compile]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

import hrnet_core as hc  # noqa: E402
from analysis.ablation.coco_data import KeypointDataset, load_keypoint_data  # noqa: E402
from analysis.ablation.precision import choose_precision, cpu_bf16_flags, steps_per_s  # noqa: E402
from analysis.ablation.recipes import load_recipe  # noqa: E402
from analysis.ablation.runner import resolve_base  # noqa: E402
from analysis.ablation.synth import builtin_dataset  # noqa: E402
from analysis.ablation.train import init_by_name, probe_batch  # noqa: E402
from hrnet_core.device import device_label, resolve_device  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
W32 = ROOT / "configs" / "pose_hrnet_w32_256x192.yaml"


def _dataset(recipe, cfg) -> KeypointDataset:
    b = recipe.builtin
    root = builtin_dataset(b.seed, b.train, b.val, b.image_size, scene=b.scene, log=print)
    data = load_keypoint_data(root, "builtin", cfg.input_hw)
    return KeypointDataset(data.train_records, cfg.input_hw, recipe.sigma, train=True, augment=recipe.augment)


def loader_images_per_s(ds: KeypointDataset, workers: int, batch: int, batches: int = 12) -> float:
    """Images/s a DataLoader with ``workers`` workers delivers (decode, warp, targets), nothing else running."""
    loader = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers)
    it = iter(loader)
    next(it)  # workers started
    t0 = time.perf_counter()
    n = 0
    for _ in range(batches):
        images, *_ = next(it)
        n += images.shape[0]
    return n / (time.perf_counter() - t0)


def row(name: str, recipe, cfg, dev: torch.device, batch: int, threads: int, steps: int, compile_: bool) -> None:
    torch.set_num_threads(threads)
    ds = _dataset(recipe, cfg)
    model = init_by_name(hc.build_model(cfg, init="default"), 0, recipe.init).to(dev)
    x = probe_batch(ds, batch, dev)
    fp32 = steps_per_s(model, x, amp=False, channels_last=False, steps=steps) * batch
    prec = choose_precision(dev, recipe, model, x)
    if prec.measured:  # the choice was timed: its own figures, from the same process
        fp32 = prec.measured["fp32_images_per_s"]
        chosen = (prec.measured["bf16_channels_last_images_per_s"] if prec.amp else fp32)
        other = prec.measured["bf16_channels_last_images_per_s"]
    else:
        chosen = steps_per_s(model, x, amp=prec.amp, channels_last=prec.channels_last, steps=steps) * batch
        other = None
    extra = f"  (bf16 + channels_last: {other:.1f} img/s)" if other is not None and not prec.amp else ""
    print(f"{name:<30} {batch:>5} {threads:>7} {fp32:>12.1f}   {prec.label:<38} {chosen:>8.1f} {chosen / fp32:>6.2f}x"
          f"{extra}", flush=True)
    if compile_:
        net = torch.compile(model)
        try:
            ips = steps_per_s(net, x, amp=prec.amp, channels_last=prec.channels_last, steps=steps, warmup=2) * batch
            print(f"{'  + torch.compile':<30} {batch:>5} {threads:>7} {'':>12}   {'':<38} {ips:>8.1f} {ips / fp32:>6.2f}x")
        except Exception as err:  # no C++ compiler, say
            print(f"  torch.compile failed: {err.__class__.__name__}: {(str(err).splitlines() or [''])[0][:120]}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--steps", type=int, default=None, help="timed steps per path (default 3 on CPU, 20 on CUDA)")
    p.add_argument("--compile", action="store_true", help="also time torch.compile of the default path")
    args = p.parse_args(argv)
    dev = resolve_device(args.device)
    cuda = dev.type == "cuda"
    steps = args.steps or (20 if cuda else 3)
    if cuda:
        torch.backends.cudnn.benchmark = True
    else:
        torch.set_flush_denormal(True)
    cores = os.cpu_count() or 1
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"training throughput on {device_label(dev)}; torch {torch.__version__}; {cores} CPU cores, load "
          f"{load:.2f}; CPU bf16 flags: {', '.join(cpu_bf16_flags()) or 'none'}")
    print(f"{'model':<30} {'batch':>5} {'threads':>7} {'eager fp32':>12}   {'default path':<38} {'img/s':>8} "
          f"{'ratio':>7}")
    cpu_recipe = load_recipe("cpu")
    base = hc.load_config(W32)
    small = resolve_base(base, cpu_recipe)
    h, w = small.input_hw
    row(f"cpu recipe (W16 {h}x{w})", cpu_recipe, small, dev, cpu_recipe.batch_size,
        cpu_recipe.cpu_threads or cores if not cuda else cores, steps, args.compile)
    quick = replace(load_recipe("quick"), builtin=replace(cpu_recipe.builtin, image_size=(256, 256)))
    row("pose HRNet-W32 256x192", quick, base, dev, 32 if cuda else 8, cores, steps, args.compile)

    # Loading: what one DataLoader delivers against what one training process consumes.
    torch.set_num_threads(cpu_recipe.cpu_threads or 1)
    ds = _dataset(cpu_recipe, small)
    for workers in (0, 1):
        ips = loader_images_per_s(ds, workers, cpu_recipe.batch_size)
        print(f"data loading, cpu recipe, {workers} worker(s): {ips:.0f} img/s (one training job consumes the "
              f"'default path' figure above)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
