"""What the System page reports about this machine: memory, the CPU and the features that matter for HRNet on
CPU (bf16, AMX, AVX-512), and the versions of every library in the project's design card.

Read from ``/proc`` (Linux), ``os`` and ``importlib.metadata``: no process is started. Fields a platform does not
expose read ``unknown``.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pandas as pd

# The design card's libraries (GUIDE.md), by distribution name.
LIBRARIES = ("torch", "fvcore", "pandas", "pyyaml", "graphviz", "plotly", "streamlit", "pycocotools", "pillow",
             "scikit-image", "scipy", "safetensors", "onnx", "onnxruntime", "numpy", "playwright", "hypothesis")
# /proc/cpuinfo flags worth knowing: bf16 / AMX matmuls (Sapphire Rapids+), AVX-512 and AVX2 kernels.
CPU_FLAGS = {"avx2": "AVX2", "avx512f": "AVX-512F", "avx512_bf16": "AVX-512 BF16", "amx_bf16": "AMX BF16",
             "amx_tile": "AMX tiles", "amx_int8": "AMX INT8"}


@dataclass(frozen=True)
class Machine:
    """``ram_total_mib`` / ``ram_available_mib`` (MiB; ``None`` when unknown), ``cpu_model``, ``cores``,
    ``flags`` (each of ``CPU_FLAGS``' labels -> present?)."""

    ram_total_mib: float | None
    ram_available_mib: float | None
    cpu_model: str
    cores: int
    flags: dict[str, bool]


def _meminfo(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            out[key.strip()] = int(parts[0]) / 1024  # kB -> MiB
    return out


def machine(proc: Path = Path("/proc")) -> Machine:
    """This machine's ``Machine`` (``proc``: where ``meminfo`` and ``cpuinfo`` are read)."""
    try:
        mem = _meminfo((proc / "meminfo").read_text())
    except OSError:
        mem = {}
    try:
        cpuinfo = (proc / "cpuinfo").read_text()
    except OSError:
        cpuinfo = ""
    model, flags = platform.processor() or "unknown", set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("model name", "Model") and model in ("unknown", "", platform.machine()):
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = set(value.split())
    return Machine(mem.get("MemTotal"), mem.get("MemAvailable"), model or "unknown", os.cpu_count() or 1,
                   {label: flag in flags for flag, label in CPU_FLAGS.items()})


def library_versions() -> pd.DataFrame:
    """``library``, ``version`` (``not installed`` when absent) for every one of ``LIBRARIES``."""
    rows = []
    for name in LIBRARIES:
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            version = "not installed"
        rows.append({"library": name, "version": version})
    return pd.DataFrame(rows)
