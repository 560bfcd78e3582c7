"""Device choice shared by the CLI, analysis and UI: CUDA when present, with bf16 autocast and
channels_last there; float32 and the default memory format on CPU."""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from .errors import UserInputError, quote


class DeviceError(UserInputError):
    """An unknown device name, or ``cuda`` asked for where no CUDA GPU is available."""


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> ``cuda`` when available else ``cpu``; an unknown name, or ``cuda`` without a GPU, raises
    ``DeviceError`` (a ``UserInputError``, so also a ``ValueError``)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise DeviceError(f"unknown device {quote(name)}; expected auto, cpu or cuda")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceError("device cuda asked for, but no CUDA GPU is available")
    return torch.device(name)


def device_label(device: torch.device) -> str:
    """``cpu`` or ``cuda (NVIDIA H100 80GB HBM3)``: printed beside every measured figure."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return "cpu"


def prepare(model: nn.Module, device: torch.device) -> nn.Module:
    """Move ``model`` to ``device``; channels_last on CUDA."""
    model = model.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model


def prepare_input(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Move an ``(N, 3, H, W)`` batch to ``device``; channels_last on CUDA, as ``prepare`` does the model."""
    x = x.to(device)
    return x.contiguous(memory_format=torch.channels_last) if device.type == "cuda" else x


def autocast(device: torch.device):
    """bf16 autocast on CUDA, a no-op context on CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
