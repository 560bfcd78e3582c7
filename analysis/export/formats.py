"""Models out: ONNX, TorchScript and safetensors exports of an HRNet, each verified after writing.

- ONNX: ``torch.onnx.export`` with the TorchScript-based exporter (``dynamo=False``: the torch.export one
  needs ``onnxscript``), opset ``OPSET``; checked with ``onnx.checker`` and run in onnxruntime on the CPU;
  its outputs must equal PyTorch's within ``max |diff| <= 1e-4 * max(1, max |y|)`` (``tolerance``). Node
  names carry the official module paths (``/stage2/stage2.0/.../conv1/Conv``), so the graph reads in Netron
  with the names of the official code; ``onnx_module_names`` recovers them.
- TorchScript: ``torch.jit.trace`` (outputs as the model returns them: a tensor or a list), reloaded with
  ``torch.jit.load`` and compared.
- safetensors: the state_dict under official names plus the config as the project's YAML in the file's
  metadata (``hrnet_config``); reloaded through ``hrnet_core.load_checkpoint`` and compared.

``export(cfg, fmt, out)`` does one and returns an ``ExportReport``. Unsupported combinations raise
``ExportError`` naming the option (one line).

Writing is all-or-nothing (``staged_output``): before the model is built, an empty temporary file
``.<name>.<pid>.<random>.tmp`` is created in ``out``'s folder (which proves the folder takes files: a
missing or read-only folder, ``/proc``, a folder or a device at ``out`` are refused then, in one line).
The export is written to it and verified there; only a verified file is renamed to ``out``
(``os.replace``, atomic within a folder). A refused export (a failed check, outputs that are NaN or
infinite, an error) removes the temporary file and leaves ``out`` as it was, an existing file included;
a process killed mid-export leaves at most its hidden temporary file, never a torn file under ``out``.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

import hrnet_core as hc
from hrnet_core.errors import UserInputError, quote

FORMATS = ("onnx", "torchscript", "safetensors")
OPSET = 17
RTOL = 1e-4
CONFIG_METADATA_KEY = "hrnet_config"


class ExportError(UserInputError):
    """An export that cannot be made as asked; the message names the option."""


@dataclass(frozen=True)
class ExportReport:
    """What ``export`` wrote and how it was verified: ``max_abs_diff`` between the reloaded export and the
    PyTorch model on the same input, ``tolerance`` the bound it met."""

    path: str
    format: str
    input_hw: tuple[int, int]
    batch: int
    dynamic_batch: bool
    dynamic_size: bool
    outputs: tuple[str, ...]
    max_abs_diff: float
    tolerance: float
    size_mib: float
    seconds: float
    verified_by: str

    def to_text(self) -> str:
        dyn = [n for n, on in (("batch", self.dynamic_batch), ("height, width", self.dynamic_size)) if on]
        return (f"wrote {self.path} ({self.format}, {self.size_mib:.1f} MiB) in {self.seconds:.1f} s; input "
                f"{self.batch}x3x{self.input_hw[0]}x{self.input_hw[1]}{' (dynamic: ' + ', '.join(dyn) + ')' if dyn else ''}; "
                f"outputs {', '.join(self.outputs)}; verified by {self.verified_by}: max |diff| = "
                f"{self.max_abs_diff:.3e} <= {self.tolerance:.3e}")


def output_names(cfg: hc.HRNetConfig) -> tuple[str, ...]:
    """Graph output names: ``heatmaps`` (pose, face), ``logits`` (cls, seg), ``aux`` + ``out`` (OCR, the
    official order), ``p0``.. (V2p pyramid levels, 1/4 down to 1/4/2**(levels-1))."""
    if not isinstance(cfg, hc.HRNetConfig):  # another registered network: its heatmaps, or its backbone's maps
        n = len(cfg.spec.out_channels(cfg.backbone))
        return ("heatmaps",) if cfg.head is not None else tuple(f"map{i}" for i in range(n))
    kind = cfg.head.kind
    if kind == "v2p":
        return tuple(f"p{i}" for i in range(cfg.head.levels))
    if kind == "ocr":
        return ("aux", "out")
    return ("heatmaps",) if cfg.family in ("pose", "face") else ("logits",)


def tolerance(reference: list[torch.Tensor]) -> float:
    """``RTOL * max(1, max |y|)`` over all outputs ``y``."""
    return RTOL * max(1.0, max(float(y.abs().max()) for y in reference))


def _as_list(out) -> list[torch.Tensor]:
    return list(out) if isinstance(out, (list, tuple)) else [out]


def _max_diff(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    if len(a) != len(b) or any(x.shape != y.shape for x, y in zip(a, b)):
        raise ExportError(f"the reloaded export returns shapes {[tuple(x.shape) for x in b]}, "
                          f"PyTorch {[tuple(x.shape) for x in a]}")
    return max(float((x.float() - y.float()).abs().max()) for x, y in zip(a, b))


def check_options(cfg: hc.HRNetConfig, fmt: str, input_hw: tuple[int, int] | None, dynamic_batch: bool,
                  dynamic_size: bool) -> None:
    """Raise ``ExportError`` naming the option for a combination ``export`` does not make."""
    if fmt not in FORMATS:
        raise ExportError(f"--format: unknown {quote(fmt)}; expected one of {', '.join(FORMATS)}")
    if fmt == "safetensors":
        for flag, on in (("--input-size", input_hw is not None), ("--dynamic-batch", dynamic_batch),
                         ("--dynamic-size", dynamic_size)):
            if on:
                raise ExportError(f"{flag}: safetensors holds weights only (no graph, no input shape)")
    if fmt == "torchscript":
        for flag, on in (("--dynamic-batch", dynamic_batch), ("--dynamic-size", dynamic_size)):
            if on:
                raise ExportError(f"{flag}: only with --format onnx (a TorchScript trace is checked at the traced shape)")
    if dynamic_size and not isinstance(cfg, hc.HRNetConfig):
        raise ExportError(f"--dynamic-size: not for arch {cfg.arch} (its fusions upsample by scale factors fixed at "
                          "the traced size); export at a fixed --input-size")
    if dynamic_size and cfg.upsample.mode == "nearest":
        raise ExportError("--dynamic-size: not with nearest upsampling by scale factor (upsample.mode: nearest, "
                          f"family {cfg.family}): the fusions need sides that are multiples of "
                          f"{cfg.min_input_multiple}; export at a fixed --input-size")


def make_input(cfg: hc.HRNetConfig, batch: int = 1, seed: int = 0) -> torch.Tensor:
    """A standard-normal ``(batch, 3, H, W)`` input at ``cfg.input_hw``."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, *cfg.input_hw, generator=gen)


def export_onnx(model: nn.Module, cfg: hc.HRNetConfig, x: torch.Tensor, out: str | Path, dynamic_batch: bool = False,
                dynamic_size: bool = False) -> Path:
    """Write ``model`` (eval mode) traced on ``x`` ``(N, 3, H, W)`` as ONNX (opset ``OPSET``) to ``out``."""
    out = Path(out)
    names = output_names(cfg)
    axes: dict[int, str] = {}
    if dynamic_batch:
        axes[0] = "batch"
    if dynamic_size:
        axes |= {2: "height", 3: "width"}
    dynamic_axes = None
    if axes:
        # Output axes follow the input's: batch always, spatial sides as the input's over the stride.
        out_axes = {0: "batch"} if dynamic_batch else {}
        if dynamic_size and cfg.head.kind != "cls":
            out_axes |= {2: "out_height", 3: "out_width"}
        dynamic_axes = {"input": axes, **{n: dict(out_axes) for n in names}}
    with warnings.catch_warnings():
        # The TorchScript-based exporter warns that it is the legacy one; it is chosen on purpose (module doc).
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), (x,), str(out), opset_version=OPSET, dynamo=False, input_names=["input"],
                          output_names=list(names), dynamic_axes=dynamic_axes)
    return out


def check_onnx(path: str | Path) -> None:
    """``onnx.checker`` on the file (by path, so models above 2 GiB are checked too)."""
    import onnx

    onnx.checker.check_model(str(path))


def onnxruntime_session(path: str | Path, threads: int | None = None):
    """A CPU onnxruntime session for ``path``; ``threads`` intra-op threads (default: torch's)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or torch.get_num_threads()
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def run_onnxruntime(session, x: torch.Tensor) -> list[torch.Tensor]:
    """The session's outputs on ``x``, as CPU float32 tensors in graph order."""
    return [torch.from_numpy(np.asarray(y)) for y in session.run(None, {"input": x.numpy()})]


def module_path(node_name: str) -> str:
    """The module path in a node name of the TorchScript-based exporter: one scope per module, where an
    indexed child repeats its parent's name (``/layer1/layer1.0/downsample/downsample.0/Conv`` ->
    ``layer1.0.downsample.0``); ``""`` for nodes outside any module."""
    scopes = node_name.strip("/").split("/")[:-1]
    path, prev = "", ""
    for scope in scopes:
        path = (path + scope[len(prev):]) if prev and scope.startswith(prev + ".") else (f"{path}.{scope}" if path else scope)
        prev = scope
    return path


def onnx_module_names(path: str | Path) -> set[str]:
    """The module paths of the graph's nodes (see ``module_path``)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return {p for node in graph.node if (p := module_path(node.name))}


def export_torchscript(model: nn.Module, x: torch.Tensor, out: str | Path) -> Path:
    """``torch.jit.trace`` of ``model`` on ``x``, saved to ``out``."""
    out = Path(out)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model.eval(), (x,), strict=False, check_trace=False)
        traced.save(str(out))
    return out


def export_safetensors(model: nn.Module, cfg: hc.HRNetConfig, out: str | Path) -> Path:
    """The state_dict (official names) with the config YAML in the metadata under ``CONFIG_METADATA_KEY``."""
    from safetensors.torch import save_file

    out = Path(out)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out), metadata={"format": "pt", CONFIG_METADATA_KEY: hc.dump_config(cfg)})
    return out


def check_output(out: str | Path) -> Path:
    """``out`` as a path ``export`` may write: its folder exists and ``out`` is not a folder, a device or
    anything but a regular file (an existing file is fine: it is replaced once the export is verified).
    Raises ``ExportError`` naming ``-o``."""
    out = Path(out)
    if out.is_dir():
        raise ExportError(f"-o {out}: is a folder, not a file name")
    if out.exists() and not out.is_file():
        raise ExportError(f"-o {out}: exists and is not a regular file (a device or a pipe)")
    if not out.parent.is_dir():
        raise ExportError(f"-o: folder {out.parent} does not exist")
    return out


@contextlib.contextmanager
def staged_output(out: Path) -> Iterator[Path]:
    """A new, empty temporary file in ``out``'s folder to write and verify the export in; renamed to ``out``
    (``os.replace``) when the block succeeds. On any failure (a refused check, an error, Ctrl-C) the
    temporary file is removed and ``out`` is left as it was. Raises ``ExportError`` when the folder does not
    take a new file (read-only, ``/proc``, no space)."""
    tmp = out.with_name(f".{out.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError as err:
        raise ExportError(f"-o {out}: cannot create a file in {out.parent} "
                          f"({err.strerror or err.__class__.__name__})") from None
    try:
        yield tmp
        os.replace(tmp, out)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _reference(model: nn.Module, x: torch.Tensor, out: Path) -> list[torch.Tensor]:
    """PyTorch's outputs on ``x``; ``ExportError`` when any is NaN or infinite (weights that overflow)."""
    with torch.inference_mode():
        ref = _as_list(model(x))
    if not all(bool(torch.isfinite(y).all()) for y in ref):
        raise ExportError(f"{out}: the model's own outputs are NaN or infinite on the check input (weights that "
                          "overflow?); nothing exported")
    return ref


def write_and_reload(model: nn.Module, cfg: hc.HRNetConfig, fmt: str, x: torch.Tensor, path: Path, dynamic_batch: bool,
                     dynamic_size: bool) -> tuple[list[torch.Tensor], str]:
    """Write ``model`` as ``fmt`` to ``path``, reload that file and run it on ``x``: ``(outputs, verified_by)``.

    Raises ``ExportError`` when onnx.checker refuses the file or the file cannot be written (``OSError``)."""
    try:
        if fmt == "onnx":
            export_onnx(model, cfg, x, path, dynamic_batch, dynamic_size)
            try:
                check_onnx(path)
            except Exception as err:
                raise ExportError(f"onnx.checker refused the export ({str(err).splitlines()[0][:200]})") from None
            return run_onnxruntime(onnxruntime_session(path), x), f"onnx.checker + onnxruntime {_ort_version()} (CPU)"
        if fmt == "torchscript":
            export_torchscript(model, x, path)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch.jit.load's deprecation notice; TorchScript is the format asked for
                loaded = torch.jit.load(str(path), map_location="cpu").eval()
            with torch.inference_mode():
                return _as_list(loaded(x)), "torch.jit.load"
        export_safetensors(model, cfg, path)
        fresh = hc.build_model(cfg).eval()
        hc.load_checkpoint(fresh, path)
        with torch.inference_mode():
            return _as_list(fresh(x)), "hrnet_core.load_checkpoint (strict)"
    except OSError as err:
        raise ExportError(f"cannot write the {fmt} file ({err.strerror or err.__class__.__name__})") from None


def verify(ref: list[torch.Tensor], got: list[torch.Tensor], fmt: str) -> tuple[float, float]:
    """``(max |diff|, tolerance)`` of the reloaded export's outputs ``got`` against PyTorch's ``ref``;
    ``ExportError`` when they differ in shape or by more than the tolerance."""
    tol = tolerance(ref)
    diff = _max_diff(ref, got)
    if not diff <= tol:
        raise ExportError(f"the {fmt} export differs from PyTorch: max |diff| {diff:.3e} > {tol:.3e}")
    return diff, tol


def export(
    cfg: hc.HRNetConfig,
    fmt: str,
    out: str | Path,
    checkpoint: str | Path | None = None,
    input_hw: tuple[int, int] | None = None,
    dynamic_batch: bool = False,
    dynamic_size: bool = False,
    model: nn.Module | None = None,
) -> ExportReport:
    """Export ``cfg``'s model (weights from ``checkpoint``, loaded strictly, or ``model``; else official
    random initialisation) as ``fmt`` to ``out`` and verify the written file (module docstring): ``out`` is
    only ever created or replaced by renaming a verified file.

    ``input_hw``: the traced input ``(H, W)`` (default ``cfg.input_hw``). With ``dynamic_batch`` the check
    runs at batch 2. Raises ``ExportError`` (bad combination, an output path that cannot be written, failed
    check, NaN or infinite outputs), ``ConfigError`` (input size the model cannot take) and
    ``CheckpointError``; on any of them ``out`` is unchanged and no temporary file remains.
    """
    check_options(cfg, fmt, input_hw, dynamic_batch, dynamic_size)
    if input_hw is not None:
        cfg = cfg.with_input(tuple(input_hw))
    out = check_output(out)
    t0 = time.perf_counter()
    with staged_output(out) as tmp:  # before the model is built: the folder must take a new file
        if model is None:
            model = hc.build_model(cfg)
            if checkpoint is not None:
                hc.load_checkpoint(model, checkpoint)
        model = model.eval()
        batch = 2 if dynamic_batch else 1
        x = make_input(cfg, batch)
        ref = _reference(model, x, out)
        try:
            got, verified = write_and_reload(model, cfg, fmt, x, tmp, dynamic_batch, dynamic_size)
            diff, tol = verify(ref, got, fmt)
        except ExportError as err:
            raise ExportError(f"{out}: {err}; nothing exported") from None
        size = tmp.stat().st_size
    return ExportReport(
        path=str(out), format=fmt, input_hw=tuple(cfg.input_hw), batch=batch, dynamic_batch=dynamic_batch,
        dynamic_size=dynamic_size, outputs=output_names(cfg), max_abs_diff=diff, tolerance=tol,
        size_mib=size / 2**20, seconds=time.perf_counter() - t0, verified_by=verified,
    )


def _ort_version() -> str:
    import onnxruntime as ort

    return ort.__version__


__all__ = [
    "CONFIG_METADATA_KEY",
    "FORMATS",
    "OPSET",
    "ExportError",
    "ExportReport",
    "check_onnx",
    "check_options",
    "check_output",
    "export",
    "export_onnx",
    "export_safetensors",
    "export_torchscript",
    "make_input",
    "module_path",
    "onnx_module_names",
    "onnxruntime_session",
    "output_names",
    "run_onnxruntime",
    "staged_output",
    "tolerance",
    "verify",
    "write_and_reload",
]
