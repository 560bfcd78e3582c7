"""The System page (issue 12): RAM, CPU model and bf16 / AMX flags, and every design-card library's version."""

from __future__ import annotations

import os
from importlib import metadata
from pathlib import Path

import torch
from streamlit.testing.v1 import AppTest

from app.logic.system_info import LIBRARIES, CpuLoad, cpu_load, library_versions, machine

ROOT = Path(__file__).resolve().parents[1]


def test_machine_reads_proc(tmp_path):
    (tmp_path / "meminfo").write_text("MemTotal:       16384000 kB\nMemFree: 1 kB\nMemAvailable:    8192000 kB\n")
    (tmp_path / "cpuinfo").write_text("processor\t: 0\nmodel name\t: Test CPU 9000\n"
                                      "flags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n")
    m = machine(tmp_path)
    assert m.ram_total_mib == 16_000 and m.ram_available_mib == 8_000
    assert m.cpu_model == "Test CPU 9000"
    assert m.flags["AMX BF16"] and m.flags["AVX-512 BF16"] and not m.flags["AMX INT8"]
    empty = machine(tmp_path / "missing")
    assert empty.ram_total_mib is None and not any(empty.flags.values())


def test_library_versions_cover_the_design_card():
    df = library_versions()
    assert list(df["library"]) == list(LIBRARIES)
    assert df.set_index("library").loc["fvcore", "version"] == metadata.version("fvcore")
    assert {"fvcore", "pycocotools", "streamlit", "plotly", "graphviz"} <= set(df["library"])


def test_system_page_shows_ram_cpu_flags_and_versions():
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=180).run()
    at.switch_page("app/system.py").run()
    assert not at.exception and not at.error
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["RAM total"].endswith(" MiB") and metrics["RAM total"] != "unknown"
    assert any(m.value.startswith("**CPU:**") for m in at.markdown)
    assert metrics["Torch threads"] == str(torch.get_num_threads())
    assert metrics["Load average (1 min)"] != "unknown"  # Linux has one

    frames = [d.value for d in at.dataframe]
    flags = next(f for f in frames if "feature" in f.columns)
    assert "AMX BF16" in set(flags["feature"]) and "AVX-512 BF16" in set(flags["feature"])
    libs = next(f for f in frames if "library" in f.columns)
    assert libs.set_index("library").loc["pycocotools", "version"] == metadata.version("pycocotools")


def test_cpu_load_says_threads_load_and_when_it_is_busy():
    now = cpu_load()
    assert now.cores == os.cpu_count() and now.threads == torch.get_num_threads() and now.load1 is not None
    quiet = CpuLoad(0.5, 0.7, 0.9, 2, 2, "PASSIVE")
    assert not quiet.busy and quiet.warning() is None
    assert quiet.describe() == "2 torch threads on 2 cores, load average 0.5 / 0.7 / 0.9 (1 / 5 / 15 min)"
    busy = CpuLoad(3.2, 2.0, 1.0, 2, 1, "default")
    assert busy.busy and "3.2 on 2 cores" in busy.warning() and busy.describe().startswith("1 torch thread on")
    assert not CpuLoad(None, None, None, 2, 2, "default").busy
