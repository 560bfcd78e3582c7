"""Batch-1 latency of a sampled config on the inference fast path (``hrnet_core.fast_path.fast_model``: BatchNorm
folded, channels_last, ``torch.inference_mode``): the median of a few timed forwards after warm-up, on the CPU or
a CUDA GPU (synchronized around each forward). Weights are the official random init: latency does not depend on
their values."""

from __future__ import annotations

import statistics
import time

import torch

import hrnet_core as hc
from hrnet_core.device import resolve_device
from hrnet_core.fast_path import fast_inference, fast_inputs, fast_model

CPU_RUNS = (2, 7)  # warm-up forwards, timed forwards
CUDA_RUNS = (10, 20)


def batch1_latency_ms(cfg, device: torch.device, warmup: int | None = None, runs: int | None = None) -> float:
    """Median batch-1 forward time of ``cfg``'s fast-path copy on ``device``, in milliseconds, over ``runs`` timed
    forwards after ``warmup`` (defaults ``CPU_RUNS`` / ``CUDA_RUNS``). Raises ``ConfigError`` for a model too large
    to build (``hrnet_core.build_model``) and ``FastPathError`` when folding changes the outputs."""
    default = CUDA_RUNS if device.type == "cuda" else CPU_RUNS
    warmup = default[0] if warmup is None else warmup
    runs = default[1] if runs is None else runs
    model = fast_model(hc.build_model(cfg)).to(device)
    h, w = cfg.input_hw
    x = fast_inputs(torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(0)).to(device))
    times = []
    with fast_inference(device):
        for i in range(warmup + runs):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
            model(x)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if i >= warmup:
                times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def latency_meter(device: str = "auto"):
    """``(measure, label)``: ``measure(cfg) -> ms`` (``batch1_latency_ms`` on the resolved ``device``: ``auto``,
    ``cpu`` or ``cuda``) and the device's name. Raises ``DeviceError`` (a ``UserInputError``) for an unknown device
    or ``cuda`` where there is none."""
    from hrnet_core.device import device_label

    dev = resolve_device(device)
    return (lambda cfg: batch1_latency_ms(cfg, dev)), device_label(dev)


__all__ = ["CPU_RUNS", "CUDA_RUNS", "batch1_latency_ms", "latency_meter"]
