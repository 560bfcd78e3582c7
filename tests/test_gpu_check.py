"""bench/gpu_check.py without a GPU: the dry run lists every check and imports every module the checks
need, with fvcore and streamlit blocked (the device machine has neither)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BLOCKED = ("fvcore", "streamlit")


def _dry_run(*extra: str) -> subprocess.CompletedProcess:
    code = ("import runpy, sys\n"
            + "".join(f"sys.modules[{m!r}] = None\n" for m in BLOCKED)  # import fails if anything tries
            + f"sys.argv = ['gpu_check.py', '--dry-run', *{list(extra)!r}]\n"
            "try:\n    runpy.run_path('bench/gpu_check.py', run_name='__main__')\n"
            "except SystemExit as e:\n    sys.exit(e.code)\n")
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_dry_run_lists_every_check_without_fvcore_or_streamlit():
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import gpu_check
    finally:
        sys.path.pop(0)
    proc = _dry_run()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for check in gpu_check.CHECKS:
        line = next(ln for ln in proc.stdout.splitlines() if ln.strip().startswith(check.name))
        assert check.what in line and "IMPORT FAILED" not in line
    assert f"{len(gpu_check.CHECKS)} checks; imports ok" in proc.stdout
    names = {c.name for c in gpu_check.CHECKS}
    assert {"build_bf16_cl", "fast_path", "compile", "cuda_graphs", "feature_maps", "profiler", "train_quick_bf16",
            "ddp_nccl", "timm"} == names


def test_dry_run_reports_a_missing_module():
    """A check whose module cannot be imported there makes the dry run fail, naming it."""
    code = ("import runpy, sys\nsys.modules['analysis.complexity.roofline'] = None\n"
            "sys.argv = ['gpu_check.py', '--dry-run', '--only', 'profiler']\n"
            "try:\n    runpy.run_path('bench/gpu_check.py', run_name='__main__')\n"
            "except SystemExit as e:\n    sys.exit(e.code)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "IMPORT FAILED: analysis.complexity.roofline" in proc.stdout
