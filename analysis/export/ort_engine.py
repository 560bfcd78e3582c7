"""onnxruntime as a CPU inference path: a model (or a piece of one) exported to ONNX once and run in an
onnxruntime session, its outputs handed back as torch tensors.

``OrtFunction(fn, example)`` exports any function of tensors (the whole model, one profiler part, the
forward that also returns every module's outputs) through ``analysis.export.formats``'s settings (TorchScript-based
exporter, opset 17) into a temporary file and calls the session. Inputs and outputs may be one tensor or a
list of tensors, as the profiler's parts pass them on.
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from analysis.export.formats import OPSET, onnxruntime_session
from hrnet_core.errors import UserInputError, quote

ENGINES = ("torch", "onnxruntime")


class EngineError(UserInputError):
    """An engine that cannot run as asked (e.g. onnxruntime with ``--device cuda``)."""


def check_engine(engine: str, device_type: str) -> None:
    """Raise ``EngineError`` for an unknown engine or onnxruntime on another device than the CPU."""
    if engine not in ENGINES:
        raise EngineError(f"--engine: unknown {quote(engine)}; expected one of {', '.join(ENGINES)}")
    if engine == "onnxruntime" and device_type != "cpu":
        raise EngineError(f"--engine onnxruntime: runs on the CPU here; use --device cpu (got {device_type})")


def onnxruntime_version() -> str:
    import onnxruntime as ort

    return ort.__version__


class _Flat(nn.Module):
    """``fn`` over flat tensor inputs and outputs (the exporter takes tuples of tensors)."""

    def __init__(self, fn: Callable, listed: bool, owner: nn.Module | None):
        super().__init__()
        self.fn = fn
        self.listed = listed
        self.owner = owner  # registers the weights with the exporter

    def forward(self, *xs: torch.Tensor):
        out = self.fn(list(xs) if self.listed else xs[0])
        return tuple(out) if isinstance(out, (list, tuple)) else out


class OrtFunction:
    """``fn`` (tensor or list of tensors -> tensor or list) exported on ``example`` and run in onnxruntime.

    Calling it with numpy-convertible tensors of ``example``'s shapes returns what ``fn`` returns (one
    tensor, or a list when ``fn`` returns a list); ``run_numpy`` skips the torch conversions (for timing).
    """

    def __init__(self, fn: Callable, example, owner: nn.Module | None = None, threads: int | None = None):
        self.listed = isinstance(example, (list, tuple))
        xs = list(example) if self.listed else [example]
        with torch.inference_mode():
            out = fn(list(xs) if self.listed else xs[0])
        self.returns_list = isinstance(out, (list, tuple))
        self.input_names = [f"x{i}" for i in range(len(xs))]
        self._dir = tempfile.TemporaryDirectory(prefix="hrnet-ort-")
        path = Path(self._dir.name) / "part.onnx"
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(_Flat(fn, self.listed, owner).eval(), tuple(xs), str(path), opset_version=OPSET,
                              dynamo=False, input_names=self.input_names)
        self.session = onnxruntime_session(path, threads)

    def run_numpy(self, xs: list[np.ndarray]) -> list[np.ndarray]:
        return self.session.run(None, dict(zip(self.input_names, xs)))

    def __call__(self, x):
        xs = list(x) if self.listed else [x]
        outs = [torch.from_numpy(np.asarray(y)) for y in self.run_numpy([t.detach().cpu().numpy() for t in xs])]
        return outs if self.returns_list else outs[0]


__all__ = ["ENGINES", "EngineError", "OrtFunction", "check_engine", "onnxruntime_version"]
