"""How fast the complexity analysis is: the analytic backend (what the UI runs on every edit) against fvcore.

For pose W48 at 384x288 on the CPU, in one run, prints the median time of

  analytic (cold)   analysis.complexity.analyze(cfg) with its cache cleared before every call
                    (each UI edit is a new config: a cache miss) — target: under 50 ms;
  analytic (cached) the same call on a config seen before;
  fvcore backend    analyze(cfg, backend="fvcore"): builds the model, one fvcore trace with per-call
                    records, FlopCounterMode and the official conv/linear hooks on the meta device;
  fvcore alone      the model built and fvcore.nn.FlopCountAnalysis(model, x).total(), nothing else;

and the ratios to the cold analytic time (target: at least 20x, against fvcore alone, the fairest).

    python bench/analysis_speed.py [--config configs/pose_hrnet_w48_384x288.yaml] [--analytic-runs 30] [--fvcore-runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

import hrnet_core as hc  # noqa: E402
from analysis.complexity import analytic_counts, analyze  # noqa: E402
from analysis.complexity.fvcore_count import measurable_model, quiet  # noqa: E402
from hrnet_core.device import device_label  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def median_time(fn, runs: int, before=None) -> tuple[float, list[float]]:
    times = []
    for _ in range(runs):
        if before is not None:
            before()
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), times


def fvcore_alone(cfg) -> int:
    with quiet():
        from fvcore.nn import FlopCountAnalysis

        model = measurable_model(cfg)
        fca = FlopCountAnalysis(model, torch.zeros(1, 3, *cfg.input_hw))
        fca.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
        with torch.no_grad():
            return fca.total()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "pose_hrnet_w48_384x288.yaml"))
    ap.add_argument("--analytic-runs", type=int, default=30)
    ap.add_argument("--fvcore-runs", type=int, default=3)
    args = ap.parse_args(argv)
    cfg = hc.load_config(args.config)
    h, w = cfg.input_hw
    import fvcore

    print(f"config: {cfg.name} at {h}x{w}, batch 1")
    print(f"device: {device_label(torch.device('cpu'))} ({torch.get_num_threads()} torch threads), torch {torch.__version__}, "
          f"fvcore {getattr(fvcore, '__version__', '?')}")

    analyze(cfg)  # imports, first-call costs
    cold, _ = median_time(lambda: analyze(cfg), args.analytic_runs, before=analytic_counts.cache_clear)
    cached, _ = median_time(lambda: analyze(cfg), args.analytic_runs)
    fv_backend, _ = median_time(lambda: analyze(cfg, backend="fvcore"), args.fvcore_runs)
    fv_alone, _ = median_time(lambda: fvcore_alone(cfg), args.fvcore_runs)

    a, f = analyze(cfg), analyze(cfg, backend="fvcore")
    assert (a.fvcore_flops, a.conv_linear_macs, a.params) == (f.fvcore_flops, f.conv_linear_macs, f.params)
    assert fvcore_alone(cfg) == a.fvcore_flops

    print(f"analytic (cold, cache cleared): median {cold * 1e3:8.2f} ms over {args.analytic_runs} runs")
    print(f"analytic (cached)             : median {cached * 1e3:8.2f} ms over {args.analytic_runs} runs")
    print(f"fvcore backend                : median {fv_backend * 1e3:8.1f} ms over {args.fvcore_runs} runs "
          f"({fv_backend / cold:.0f}x the analytic time)")
    print(f"fvcore alone (build + trace)  : median {fv_alone * 1e3:8.1f} ms over {args.fvcore_runs} runs "
          f"({fv_alone / cold:.0f}x the analytic time)")
    print(f"same numbers: fvcore {a.fvcore_flops:,} flops, paper {a.gflops_paper:.3f} GFLOPs, params {a.params:,}")
    ok_time, ok_ratio = cold < 0.050, fv_alone / cold >= 20
    print(f"targets: analytic under 50 ms: {'yes' if ok_time else 'NO'}; at least 20x faster than fvcore: "
          f"{'yes' if ok_ratio else 'NO'} ({fv_alone / cold:.0f}x)")
    return 0 if (ok_time and ok_ratio) else 1


if __name__ == "__main__":
    sys.exit(main())
