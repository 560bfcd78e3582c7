"""Checkpoint file formats and state_dict naming schemes, detected from the file and its keys.

Files: PyTorch ``.pth`` / ``.pth.tar`` (read with ``torch.load(weights_only=True)`` by
``hrnet_core.checkpoint``) and ``.safetensors`` (read with the ``safetensors`` library: a JSON header and
raw tensor bytes, no pickle at all). Wrappers: ``{'state_dict': ...}``, ``{'model': ...}`` and mmpose's
``{'meta': ..., 'state_dict': ...}``; DataParallel's ``module.`` prefix is dropped.

Naming schemes (``NameMapping``), told apart by the keys:

- ``official``: the names of the official HRNet repos (``conv1``, ``layer1``, ``stage2.0.branches...``,
  ``final_layer``, ``last_layer``, ``incre_modules``...), which this project's models use. timm's
  ``hrnet_w*`` classification models (``timm/models/hrnet.py``) use the very same names, so a timm
  checkpoint is an ``official`` one: the report says ``official / timm`` when the keys are a cls model's.
- ``mmpose 0.x``: ``TopDown`` (mmpose 0.x ``mmpose/models/detectors/top_down.py``): every backbone key
  ``X`` is ``backbone.X`` and the heatmap conv of ``TopdownHeatmapSimpleHead`` (no deconvs, 1x1 or 3x3
  ``final_conv_kernel``) is ``keypoint_head.final_layer.{weight,bias}``. HigherHRNet (mmpose 0.x
  ``AssociativeEmbedding`` + ``AEHigherResolutionHead``, ``mmpose/models/heads/ae_higher_resolution_head.py``)
  keeps the official head layout under ``keypoint_head.``: ``final_layers.i`` (1x1 convs, one per
  resolution) and ``deconv_layers.i.0.{0,1}`` (ConvTranspose2d, BatchNorm) then ``deconv_layers.i.k.0``
  (BasicBlocks with ``conv1/bn1/conv2/bn2``).
- ``mmpose 1.x``: ``TopdownPoseEstimator`` with ``HeatmapHead`` (``deconv_out_channels=None``):
  ``backbone.X`` and ``head.final_layer.{weight,bias}``.

mmpose's HRNet backbone (``mmpose/models/backbones/hrnet.py``) keeps the official module names under
``backbone.`` (``bn1``, ``stage2.0.fuse_layers.0.1.0``...; its ``Upsample`` and ``None`` entries hold no
tensors), so the mapping is a prefix rename.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

WRAPPER_KEYS = ("state_dict", "model")
SAFETENSORS_SUFFIX = ".safetensors"


@dataclass(frozen=True)
class NameMapping:
    """A state_dict naming scheme: ``name`` (e.g. ``mmpose 1.x``), what marks it (``detail``) and the
    prefix renames (``(theirs, official)``, first match wins) that give official names."""

    name: str
    detail: str = ""
    renames: tuple[tuple[str, str], ...] = ()

    @property
    def label(self) -> str:
        return f"{self.name} ({self.detail})" if self.detail else self.name

    def official_key(self, key: str) -> str:
        for theirs, ours in self.renames:
            if key.startswith(theirs):
                return ours + key[len(theirs):]
        return key

    def apply(self, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``state`` under official names (keys no rename matches are kept as they are)."""
        return {self.official_key(k): v for k, v in state.items()}


OFFICIAL = NameMapping("official")
TIMM = NameMapping("official / timm", "timm's hrnet_w* uses the official cls names")
MMPOSE_0X = NameMapping("mmpose 0.x", "backbone. + keypoint_head.",
                        (("backbone.", ""), ("keypoint_head.final_layer.", "final_layer."),
                         ("keypoint_head.final_layers.", "final_layers."),
                         ("keypoint_head.deconv_layers.", "deconv_layers.")))
MMPOSE_1X = NameMapping("mmpose 1.x", "backbone. + head.", (("backbone.", ""), ("head.final_layer.", "final_layer.")))
MMPOSE_BACKBONE = NameMapping("mmpose", "backbone. only", (("backbone.", ""),))
MAPPINGS = (OFFICIAL, TIMM, MMPOSE_0X, MMPOSE_1X, MMPOSE_BACKBONE)


def detect_mapping(keys: Iterable[str]) -> NameMapping:
    """The naming scheme of a state_dict from its keys (module docstring)."""
    keys = list(keys)
    if any(k.startswith("backbone.") for k in keys):
        if any(k.startswith("keypoint_head.") for k in keys):
            return MMPOSE_0X
        if any(k.startswith("head.") for k in keys):
            return MMPOSE_1X
        return MMPOSE_BACKBONE
    if any(k.startswith("incre_modules.") for k in keys):
        return TIMM
    return OFFICIAL


def unwrap(obj: object) -> object:
    """The tensor mapping inside a checkpoint object: ``obj['state_dict']`` or ``obj['model']`` when that
    is a mapping (training checkpoints, mmpose's ``{'meta', 'state_dict'}``), else ``obj``."""
    for key in WRAPPER_KEYS:
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            return obj[key]
    return obj


def strip_module_prefix(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` without DataParallel / DistributedDataParallel's ``module.`` prefix."""
    return {k.removeprefix("module."): v for k, v in state.items()}


def is_safetensors(path: str | Path) -> bool:
    """Whether ``path`` is a safetensors file: by its suffix, or by its header (an 8-byte little-endian
    length followed by a JSON object), so a renamed file is still read without pickle."""
    path = Path(path)
    if path.suffix == SAFETENSORS_SUFFIX:
        return True
    try:
        with path.open("rb") as f:
            head = f.read(9)
    except OSError:
        return False
    if len(head) < 9 or head[8:9] != b"{":
        return False
    size = int.from_bytes(head[:8], "little")
    return 0 < size <= path.stat().st_size - 8


def read_safetensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and string metadata of a safetensors file (no pickle involved).

    Raises whatever ``safetensors`` raises for a corrupt file (``SafetensorError``, ``OSError``); the caller
    turns it into a one-line ``CheckpointError``.
    """
    from safetensors import safe_open

    tensors = {}
    with safe_open(str(path), framework="pt", device="cpu") as f:
        metadata = dict(f.metadata() or {})
        for key in f.keys():
            tensors[key] = f.get_tensor(key)
    return tensors, metadata


def _numpy_globals() -> list:
    """numpy arrays and scalars as mmpose's ``meta`` holds them (``dataset_meta['sigmas']``...): array and
    scalar reconstruction and plain dtypes only; object arrays still go through the weights-only unpickler."""
    core = getattr(np, "_core", None) or np.core
    multiarray = core.multiarray
    dtypes = [type(np.dtype(t)) for t in (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16,
                                          np.uint32, np.uint64, np.float16, np.float32, np.float64, np.str_)]
    return [np.ndarray, np.dtype, multiarray._reconstruct, multiarray.scalar, *dtypes]


@contextlib.contextmanager
def metadata_globals() -> Iterator[None]:
    """Let ``torch.load(weights_only=True)`` rebuild the numpy arrays of a checkpoint's metadata."""
    with torch.serialization.safe_globals(_numpy_globals()):
        yield


__all__ = [
    "MAPPINGS",
    "MMPOSE_0X",
    "MMPOSE_1X",
    "MMPOSE_BACKBONE",
    "OFFICIAL",
    "TIMM",
    "NameMapping",
    "detect_mapping",
    "is_safetensors",
    "metadata_globals",
    "read_safetensors",
    "strip_module_prefix",
    "unwrap",
]
