"""bench/latency.py's paths mode on a tiny model: the JSON object has the issue's shape, every path its rows
at each batch, and the fast paths agree with the official structure."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_latency_json_and_table(tmp_path):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text("family: pose\ninput_size: [64, 64]\nwidth: 4\nmodules: [1, 1, 1]\nblocks: 1\n")
    base = [sys.executable, "bench/latency.py", "--config", str(cfg), "--no-compile", "--rounds", "2", "--warmup", "2",
            "--threads", "1", "--batches", "1", "2"]
    proc = subprocess.run([*base, "--json"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    assert d["device"] == "cpu" and d["threads"] == 1 and len(d["load_average"]) == 3
    paths = {r["path"] for r in d["rows"]}
    assert {"official_eager_fp32", "fast_fp32", "fast_fp32_frozen", "onnxruntime"} <= paths
    assert ("fast_bf16" in paths) == d["cpu_bf16"]
    for r in d["rows"]:
        assert {"path", "batch", "median_ms", "p90_ms", "max_abs_diff"} <= set(r) and r["batch"] in (1, 2)
        assert 0 < r["median_ms"] <= r["p90_ms"]
        if r["path"] != "fast_bf16":
            assert r["max_abs_diff"] <= 1e-4, r
    assert sum(r["path"] == "fast_fp32" for r in d["rows"]) == 2
    table = subprocess.run([*base, "--no-onnx"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert table.returncode == 0 and "speed-up" in table.stdout and "official_eager_fp32" in table.stdout
    assert "onnxruntime" not in table.stdout
