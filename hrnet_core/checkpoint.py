"""Loading official and project checkpoints safely.

Accepts ``.pth`` / ``.pth.tar`` files holding a plain state_dict, or a dict with ``state_dict`` or
``model``, with or without DataParallel's ``module.`` prefix. Always ``torch.load(weights_only=True)``:
a pickle that would run code is refused, never executed.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .errors import UserInputError


class CheckpointError(UserInputError):
    """A checkpoint that cannot be read or does not fit the model; the message names the file."""


@dataclass(frozen=True)
class CheckpointReport:
    """What loading did: file, tensors loaded, and (non-strict) what was missing or unexpected."""

    path: str
    loaded: int
    missing: tuple[str, ...] = field(default=())
    unexpected: tuple[str, ...] = field(default=())

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
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else "unsafe pickle"
        raise CheckpointError(f"{path}: refused, not a weights-only checkpoint ({first[:160]})") from None
    except Exception as err:  # torch.load on a corrupt or foreign file can raise nearly any type
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({err.__class__.__name__})") from None
    for key in ("state_dict", "model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: holds no state_dict (a mapping of names to tensors)")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def load_checkpoint(model: nn.Module, path: str | Path, strict: bool = True) -> CheckpointReport:
    """Load ``path`` into ``model`` (values cast to the model's dtypes).

    Strict by default: raises ``CheckpointError`` listing missing, unexpected and mis-shaped keys.
    Non-strict loads the keys whose names and shapes match and reports the rest.
    """
    state = read_state_dict(path)
    own = model.state_dict()
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
    return CheckpointReport(str(path), len(usable), tuple(missing + shaped), tuple(unexpected))
