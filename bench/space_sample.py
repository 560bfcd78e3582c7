"""How fast ``hrnet-explorer space sample`` draws 1000 configs: the whole command (a fresh process: imports, the space
file, rejection sampling with the closed-form counts, writing the folder) for an HRNet space (the issue's example,
``fusion_all``) and a Lite-HRNet space. Target: at most 10 s each on the project's 2-core machine.

Prints, per space, the wall time of the command (median of ``--runs``), the sampling alone in this process
(``analysis.space.sample_space``: draws, rejections) and the load average before and after (``os.getloadavg``: other
processes on the machine slow both). A benchmark, not a test.

    python bench/space_sample.py [-n 1000] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SPACES = {
    "hrnet": f"""
name: fusion_all
base: {ROOT / "configs" / "pose_hrnet_w32_256x192.yaml"}
seed: 0
sample:
  width: {{int: [8, 64], dist: log_uniform}}
  blocks: {{int: [1, 4]}}
  modules: {{choice: [[1, 1, 1], [1, 4, 3]]}}
  fusion: {{choice: [none, final_only, across_stage, all]}}
  input_size: {{choice: [[256, 192], [128, 96]]}}
constraints:
  params: {{max: 10.0e6}}
  gflops: {{min: 0.1, max: 6.0}}
""",
    "litehrnet": """
name: lite_widths
base: litehrnet_18_256x192
seed: 0
sample:
  extra.stem.stem_channels: {int: [16, 32], step: 8}
  extra.stages_spec.num_blocks: {int: [1, 3]}
  extra.stages_spec.num_modules: {choice: [[2, 4, 2], [3, 8, 3], [1, 2, 1]]}
  extra.stages_spec.num_channels: {choice: [[[40, 80], [40, 80, 160], [40, 80, 160, 320]],
                                            [[32, 64], [32, 64, 128], [32, 64, 128, 256]]]}
  extra.stages_spec.with_fuse: {choice: [[true, true, true], [false, false, true]]}
  input_size: {choice: [[256, 192], [384, 288]]}
constraints:
  gflops: {max: 0.5}
""",
}


def load() -> str:
    return "load average " + " / ".join(f"{v:.2f}" for v in os.getloadavg()) + " (1 / 5 / 15 min)"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=1000, help="configs per space (default 1000)")
    ap.add_argument("--runs", type=int, default=3, help="command runs per space; the median is printed (default 3)")
    args = ap.parse_args()
    from analysis.space import read_space, sample_space

    print(f"{os.cpu_count()} CPUs; {load()}")
    with tempfile.TemporaryDirectory() as tmp:
        for key, text in SPACES.items():
            space_file = Path(tmp) / f"{key}.yaml"
            space_file.write_text(text)
            walls = []
            for i in range(args.runs):
                out = Path(tmp) / f"{key}-{i}"
                t0 = time.perf_counter()
                done = subprocess.run([sys.executable, "-m", "analysis.cli", "space", "sample", str(space_file),
                                       "-n", str(args.n), "--out", str(out)], cwd=ROOT, capture_output=True, text=True)
                walls.append(time.perf_counter() - t0)
                if done.returncode != 0:
                    print(done.stderr.strip())
                    return 1
            t0 = time.perf_counter()
            run = sample_space(read_space(space_file), args.n)
            alone = time.perf_counter() - t0
            print(f"{key:<10} {args.n} configs: whole command {statistics.median(walls):.2f} s (median of {args.runs}: "
                  f"{', '.join(f'{w:.2f}' for w in walls)}); sampling alone {alone:.2f} s for {run.draws} draws "
                  f"(rejected: {run.rejection_text(2)}); {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
