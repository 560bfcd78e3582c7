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


@dataclass(frozen=True)
class CpuLoad:
    """The 1-, 5- and 15-minute load averages (``None`` where the platform has none), the cores, torch's intra-op
    threads and the OpenMP wait policy (``OMP_WAIT_POLICY``; ``default`` when unset): what a CPU latency figure
    needs beside it."""

    load1: float | None
    load5: float | None
    load15: float | None
    cores: int
    threads: int
    omp_wait_policy: str

    @property
    def busy(self) -> bool:
        """Whether more runnable work than cores waited over the last minute: timings read slow then."""
        return self.load1 is not None and self.load1 > self.cores

    def describe(self) -> str:
        """``2 torch threads on 2 cores, load average 0.8 / 1.2 / 1.5 (1 / 5 / 15 min)``."""
        load = ("load average unknown" if self.load1 is None
                else f"load average {self.load1:.1f} / {self.load5:.1f} / {self.load15:.1f} (1 / 5 / 15 min)")
        return f"{self.threads} torch thread{'s' if self.threads != 1 else ''} on {self.cores} cores, {load}"

    def warning(self) -> str | None:
        """One line when the machine is busier than its cores (``busy``), else None."""
        if not self.busy:
            return None
        return (f"Load average {self.load1:.1f} on {self.cores} cores: other processes compete for the CPU, so "
                "these times read slower than on a quiet machine; measure again when it is idle.")


def cpu_load() -> CpuLoad:
    """This process's ``CpuLoad`` now (``os.getloadavg``, ``torch.get_num_threads``)."""
    import torch

    try:
        l1, l5, l15 = os.getloadavg()
    except OSError:
        l1 = l5 = l15 = None
    return CpuLoad(l1, l5, l15, os.cpu_count() or 1, torch.get_num_threads(),
                   os.environ.get("OMP_WAIT_POLICY", "default"))


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
