"""System: torch and CUDA versions, the GPU and its memory, and the device the app computes on."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess

import pandas as pd
import streamlit as st
import torch

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
