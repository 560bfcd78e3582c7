"""Time to capture and render every feature map of pose HRNet-W32 on a 256x192 photograph.

    python bench/features_speed.py [--runs 5] [--device cpu|cuda|all] [--threads N] [--config PATH] [--image NAME|PATH]

For each device (CPU, and CUDA where available): the first (cold) run, then the median of ``--runs``
warm runs of ``capture`` (preprocessing + one forward through ``forward_intermediates`` + the
per-branch reductions) and ``write_feature_maps`` (every PNG, overlays, head maps, stats.csv).
Target on CPU: under 2 s for capture + render.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import hrnet_core as hc  # noqa: E402
from analysis.features import capture, write_feature_maps  # noqa: E402
from hrnet_core.device import device_label  # noqa: E402

TARGET_CPU_S = 2.0


def _load() -> str:
    try:
        return " ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def one_run(model, cfg, image: str, device: str, out: Path) -> dict[str, float]:
    t0 = time.perf_counter()
    cap = capture(model, cfg, image, device=device)
    t1 = time.perf_counter()
    groups = write_feature_maps(cap, out)
    t2 = time.perf_counter()
    return {"capture": t1 - t0, "forward": cap.timings["forward_s"], "reduce": cap.timings["reduce_s"],
            "render": t2 - t1, "total": t2 - t0, "files": sum(len(v) for v in groups.values())}


def bench(cfg, image: str, device: str, runs: int) -> dict:
    torch.manual_seed(0)
    model = hc.build_model(cfg)
    with tempfile.TemporaryDirectory() as tmp:
        cold = one_run(model, cfg, image, device, Path(tmp) / "cold")
        warm = [one_run(model, cfg, image, device, Path(tmp) / f"run{i}") for i in range(runs)]
    med = {k: statistics.median(r[k] for r in warm) for k in warm[0]}
    return {"cold": cold, "warm": med, "device": device_label(torch.device(device))}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(ROOT / "configs" / "pose_hrnet_w32_256x192.yaml"))
    p.add_argument("--image", default="astronaut")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--device", choices=("cpu", "cuda", "all"), default="all")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice); 1 avoids OpenMP "
                                               "spin-waiting when other jobs load the CPU")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = hc.load_config(args.config)
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    if "cuda" in devices and not torch.cuda.is_available():
        print("cuda: not available on this machine (skipped)")
        devices.remove("cuda")
    print(f"{cfg.name}, input {cfg.input_hw[0]}x{cfg.input_hw[1]}, image {args.image}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {os.cpu_count()} CPUs, load average {_load()}")
    ok = True
    for dev in devices:
        r = bench(cfg, args.image, dev, args.runs)
        c, w = r["cold"], r["warm"]
        print(f"[{r['device']}] cold: capture {c['capture'] * 1e3:.0f} ms (forward {c['forward'] * 1e3:.0f}), "
              f"render {c['render'] * 1e3:.0f} ms, total {c['total']:.2f} s")
        print(f"[{r['device']}] warm median of {args.runs}: capture {w['capture'] * 1e3:.0f} ms "
              f"(forward {w['forward'] * 1e3:.0f}, reduce {w['reduce'] * 1e3:.0f}), render {w['render'] * 1e3:.0f} ms "
              f"({int(w['files'])} files), total {w['total']:.2f} s")
        if dev == "cpu":
            verdict = "met" if w["total"] < TARGET_CPU_S else "MISSED"
            ok &= w["total"] < TARGET_CPU_S
            print(f"[{r['device']}] target capture + render < {TARGET_CPU_S:.0f} s: {verdict}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
