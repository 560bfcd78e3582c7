"""Loading official and project checkpoints safely.

Accepts ``.pth`` / ``.pth.tar`` files holding a plain state_dict, or a dict with ``state_dict`` or
``model`` (mmpose: ``meta`` + ``state_dict``), with or without DataParallel's ``module.`` prefix, and
``.safetensors`` files (no pickle at all). Always ``torch.load(weights_only=True)``: a pickle that would
run code is refused, never executed. Official, timm and mmpose 0.x / 1.x names are told apart by the
keys and mapped to the official ones (``hrnet_core.checkpoint_formats``).
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from . import checkpoint_formats as formats
from .errors import UserInputError


class CheckpointError(UserInputError):
    """A checkpoint that cannot be read or does not fit the model; the message names the file."""


@dataclass(frozen=True)
class CheckpointReport:
    """What loading did: file, tensors loaded, and (non-strict) what was missing or unexpected.

    ``format`` is the naming scheme found (``NameMapping.label``, e.g. ``mmpose 1.x (backbone. + head.)``);
    ``filled`` the BatchNorm ``num_batches_tracked`` counters the file lacked (kept at 0; eval ignores them).
    """

    path: str
    loaded: int
    missing: tuple[str, ...] = field(default=())
    unexpected: tuple[str, ...] = field(default=())
    format: str = "official"
    filled: int = 0

    @property
    def format_line(self) -> str:
        """``format: mmpose 1.x (backbone. + head.), 1754 tensors mapped, strict``."""
        strict = "strict" if not self.missing and not self.unexpected else (
            f"not strict: {len(self.missing)} missing, {len(self.unexpected)} unexpected")
        filled = f" ({self.filled} num_batches_tracked absent, kept at 0)" if self.filled else ""
        return f"format: {self.format}, {self.loaded} tensors mapped, {strict}{filled}"

    @property
    def status(self) -> str:
        if not self.missing and not self.unexpected:
            return f"loaded {self.loaded} tensors from {self.path} (strict)"
        return f"loaded {self.loaded} tensors from {self.path}; {len(self.missing)} missing, {len(self.unexpected)} unexpected"


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint file, unwrapped and without ``module.`` prefixes.

    Raises ``CheckpointError`` for a missing file, a non-checkpoint, a pickle needing code to load,
    or a file without a tensor mapping.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if formats.is_safetensors(path):
        try:
            tensors, _ = formats.read_safetensors(path)
        except Exception as err:  # safetensors raises its own error type for a torn or foreign file
            raise CheckpointError(f"{path}: not a readable safetensors file ({str(err).splitlines()[0][:160]})") from None
        if not tensors:
            raise CheckpointError(f"{path}: holds no tensors")
        return formats.strip_module_prefix(tensors)
    try:
        with formats.metadata_globals():
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else "unsafe pickle"
        raise CheckpointError(f"{path}: refused, not a weights-only checkpoint ({first[:160]})") from None
    except Exception as err:  # torch.load on a corrupt or foreign file can raise nearly any type
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({err.__class__.__name__})") from None
    obj = formats.unwrap(obj)
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: holds no state_dict (a mapping of names to tensors)")
    return formats.strip_module_prefix(obj)


def load_checkpoint(model: nn.Module, path: str | Path, strict: bool = True) -> CheckpointReport:
    """Load ``path`` into ``model`` (values cast to the model's dtypes).

    Keys in timm or mmpose 0.x / 1.x naming are mapped to the official names first (the report's
    ``format``). Strict by default: raises ``CheckpointError`` listing missing, unexpected and mis-shaped
    keys; absent ``num_batches_tracked`` counters alone do not count as missing. Non-strict loads the keys
    whose names and shapes match and reports the rest.
    """
    raw = read_state_dict(path)
    mapping = formats.detect_mapping(raw)
    state = mapping.apply(raw)
    own = model.state_dict()
    absent_counters = [k for k in own if k not in state and k.endswith("num_batches_tracked")]
    state |= {k: own[k] for k in absent_counters}
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shaped = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if strict and (missing or unexpected or shaped):
        shaped_shown = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in shaped]
        parts = [f"{len(keys)} {label} ({', '.join(keys[:5])}{', ...' if len(keys) > 5 else ''})"
                 for label, keys in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", shaped_shown))
                 if keys]
        raise CheckpointError(f"{path}: does not fit the model: " + "; ".join(parts))
    usable = {k: v.to(own[k].dtype) for k, v in state.items() if k in own and k not in shaped}
    model.load_state_dict(usable, strict=strict)
    return CheckpointReport(str(path), len(usable) - len(absent_counters), tuple(missing + shaped), tuple(unexpected),
                            mapping.label, len(absent_counters))
