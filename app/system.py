"""System: the device the app computes on, memory, the CPU and its bf16 / AMX features, the GPU, and the versions
of torch, CUDA and every library of the design card."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess

import pandas as pd
import streamlit as st
import torch

from app.logic.system_info import cpu_load, library_versions, machine
from hrnet_core.device import device_label, resolve_device


def _graphviz_version() -> str:
    dot = shutil.which("dot")
    if dot is None:
        return "not installed (diagrams need the system Graphviz package: `make sysdeps`)"
    try:
        out = subprocess.run([dot, "-V"], capture_output=True, text=True, timeout=5)
        return (out.stderr or out.stdout).strip() or dot
    except (OSError, subprocess.SubprocessError) as err:
        return f"{dot} ({type(err).__name__})"


st.title("System")
device = resolve_device("auto")
st.metric("Device in use", device_label(device),
          help="Models, feature maps and profiles run here by default (CUDA whenever a GPU is visible).")
if device.type == "cuda":
    st.caption("On the GPU: bf16 autocast and channels_last for feature maps and profiles.")

rows = [
    ("python", platform.python_version()),
    ("torch", torch.__version__),
    ("CUDA (torch build)", torch.version.cuda or "none (CPU build)"),
    ("cuDNN", str(torch.backends.cudnn.version()) if torch.backends.cudnn.is_available() else "none"),
    ("CUDA available", str(torch.cuda.is_available())),
    ("streamlit", st.__version__),
    ("graphviz (dot)", _graphviz_version()),
    ("CPU threads (torch)", str(torch.get_num_threads())),
    ("CPU cores", str(os.cpu_count())),
    ("platform", platform.platform()),
]
st.subheader("Software")
st.dataframe(pd.DataFrame(rows, columns=["item", "value"]), hide_index=True, width="stretch")

st.subheader("Machine")
m = machine()
load = cpu_load()
c1, c2, c3, c4, c5 = st.columns(5)
c1.metric("RAM total", f"{m.ram_total_mib:,.0f} MiB" if m.ram_total_mib else "unknown")
c2.metric("RAM available", f"{m.ram_available_mib:,.0f} MiB" if m.ram_available_mib else "unknown")
c3.metric("CPU cores", f"{m.cores}")
c4.metric("Torch threads", f"{load.threads}", help=f"OpenMP wait policy: {load.omp_wait_policy}")
c5.metric("Load average (1 min)", "unknown" if load.load1 is None else f"{load.load1:.2f}",
          help=load.describe())
if load.warning():
    st.warning(load.warning())
st.markdown(f"**CPU:** {m.cpu_model}")
st.dataframe(pd.DataFrame([{"feature": k, "present": v} for k, v in m.flags.items()]), hide_index=True,
             column_config={"present": st.column_config.CheckboxColumn("present")})
st.caption("AVX-512 BF16 and AMX make bf16 autocast fast on CPU; without them bf16 is emulated and fp32 is faster.")

st.subheader("Libraries")
st.dataframe(library_versions(), hide_index=True, width="stretch")

st.subheader("GPUs")
if not torch.cuda.is_available():
    st.info("No CUDA GPU is visible to torch; everything runs on the CPU.")
else:
    gpus = []
    for i in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(i)
        free, total = torch.cuda.mem_get_info(i)
        gpus.append({
            "index": i, "name": props.name, "capability": f"{props.major}.{props.minor}",
            "memory total (GiB)": round(total / 2**30, 2), "memory free (GiB)": round(free / 2**30, 2),
            "allocated by this app (MiB)": round(torch.cuda.memory_allocated(i) / 2**20, 1),
            "multiprocessors": props.multi_processor_count,
        })
    st.dataframe(pd.DataFrame(gpus), hide_index=True, width="stretch")
