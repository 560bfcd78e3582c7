"""One job on every core: the `cpu` recipe's 8-fusion job trained with the defaults (all cores for one job)
against the same job with ``--cpu-threads 1``, and against 2 gloo ranks of one thread each (``torchrun``, half
the batch per rank so the global batch is the recipe's), back to back, with the load average.

Each row is the training images/s of the last epoch (``metrics.jsonl``: training steps only, not the
evaluation) and the wall time of the whole command. Not a test: figures for the README.

    python bench/job_threads.py [--epochs 2] [--no-ranks]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analysis.ablation.threads import available_cores  # noqa: E402


def _load() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"


def _run(cmd: list[str], out: Path) -> tuple[float, float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{(proc.stdout + proc.stderr)[-2000:]}")
    rows = [json.loads(x) for x in (out / "all" / "seed0" / "metrics.jsonl").read_text().splitlines() if x.strip()]
    first = next((x for x in proc.stdout.splitlines() if "CPU thread" in x and "training persons" in x), "")
    return float(rows[-1]["images_per_s"]), wall, first.split("), ")[-1] if first else ""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--no-ranks", action="store_true", help="skip the 2 gloo ranks row")
    p.add_argument("--repeat", type=int, default=2, help="rounds of the rows, alternating (best of each kept)")
    args = p.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="job-threads-"))
    ablate = [sys.executable, "-m", "analysis.cli", "ablate", "--recipe", "cpu", "--variants", "all", "--seeds", "1",
              "--epochs", str(args.epochs), "--device", "cpu"]
    print(f"cpu recipe, variant all (8 fusions), 1 seed, {args.epochs} epochs; {available_cores()} cores; "
          f"load average before {_load()}")
    rows: dict[str, float] = {}
    try:
        for k in range(args.repeat):
            _round(ablate, tmp / f"round{k}", rows, args)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    base = rows["--cpu-threads 1"]
    print(f"best of {args.repeat}: " + ", ".join(f"{k} {v:.1f} img/s" for k, v in rows.items()))
    print("ratio to --cpu-threads 1: " + ", ".join(f"{k} {v / base:.2f}x" for k, v in rows.items()))
    return 0


def _keep(rows: dict, name: str, ips: float) -> None:
    rows[name] = max(ips, rows.get(name, 0.0))


def _round(ablate: list[str], tmp: Path, rows: dict, args) -> None:
    tmp.mkdir(parents=True)
    for name, extra in (("defaults", []), ("--cpu-threads 1", ["--cpu-threads", "1"])):
        out = tmp / name.replace(" ", "").replace("-", "")
        ips, wall, how = _run([*ablate, *extra, "--out", str(out)], out)
        _keep(rows, name, ips)
        print(f"{name:<28} {ips:7.1f} img/s  wall {wall:6.1f} s  ({how}); load {_load()}", flush=True)
    if not args.no_ranks:
        doc = yaml.safe_load((ROOT / "configs" / "recipes" / "cpu.yaml").read_text())
        doc.update(name="cpu_half_batch", batch_size=doc["batch_size"] // 2, cpu_threads=1)
        recipe = tmp / "cpu_half_batch.yaml"
        recipe.write_text(yaml.safe_dump(doc))
        out = tmp / "ranks"
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
               "analysis.cli", "ablate", "--recipe", str(recipe), "--variants", "all", "--seeds", "1", "--epochs",
               str(args.epochs), "--device", "cpu", "--out", str(out)]
        ips, wall, how = _run(cmd, out)
        _keep(rows, "2 gloo ranks x 1 thread", ips)
        print(f"{'2 gloo ranks x 1 thread':<28} {ips:7.1f} img/s  wall {wall:6.1f} s  ({how}, half batch per "
              f"rank); load {_load()}", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
