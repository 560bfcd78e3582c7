"""Loading official and project checkpoints safely.

Accepts ``.pth`` / ``.pth.tar`` files holding a plain state_dict, or a dict with ``state_dict`` or
``model`` (mmpose: ``meta`` + ``state_dict``), with or without DataParallel's ``module.`` prefix, and
``.safetensors`` files (no pickle at all). Always ``torch.load(weights_only=True)``: a pickle that would
run code is refused, never executed. Official, timm and mmpose 0.x / 1.x names are told apart by the
keys and mapped to the official ones (``hrnet_core.checkpoint_formats``). Before anything is loaded the
file must be a regular file of at most ``MAX_CHECKPOINT_BYTES`` that looks like a PyTorch checkpoint (a
zip archive or a pickle) or a safetensors file, and a zip archive may not expand beyond
``MAX_CHECKPOINT_BYTES`` nor beyond about its own size (``torch.save`` stores its entries uncompressed;
a zip bomb deflates them). Weights that are NaN or infinite are refused unless ``allow_nonfinite``
(then a ``NonFiniteWeightsWarning``).
"""

from __future__ import annotations

import pickle
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from . import checkpoint_formats as formats
from .errors import UserInputError, quote

MAX_CHECKPOINT_BYTES = 2 * 2**30  # HRNet-W64-C, the largest official model, is 0.5 GB
_ZIP_SLACK = 2**20  # zip headers and alignment padding beyond the stored bytes


class CheckpointError(UserInputError):
    """A checkpoint that cannot be read or does not fit the model; the message names the file."""


class NonFiniteWeightsWarning(UserWarning):
    """A checkpoint with NaN or infinite weights was loaded because ``allow_nonfinite`` was given."""


def check_checkpoint_file(path: str | Path, max_bytes: int = MAX_CHECKPOINT_BYTES) -> str:
    """What ``path`` is before ``torch.load`` touches it: ``"zip"`` or ``"pickle"``.

    Raises ``CheckpointError`` telling apart: no such file, a directory, not a regular file (a device such
    as /dev/zero, a pipe), empty or too large, not a checkpoint (text, random bytes, another zip), and a
    zip archive that would expand far beyond its size.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a directory, not a checkpoint file")
    if not path.is_file():
        raise CheckpointError(f"{path}: is not a regular file (a device or a pipe), not a checkpoint file")
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError as err:
        raise CheckpointError(f"{path}: cannot read ({err.strerror or err.__class__.__name__})") from None
    if size == 0:
        raise CheckpointError(f"{path}: is empty, not a checkpoint")
    if size > max_bytes:
        raise CheckpointError(f"{path}: is {size / 2**30:.1f} GiB; checkpoints above {max_bytes / 2**30:.1f} GiB "
                              "are refused")
    if head == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(path) as zf:
                infos = zf.infolist()
        except (zipfile.BadZipFile, OSError, ValueError):
            raise CheckpointError(f"{path}: not a checkpoint (a damaged zip archive)") from None
        expanded = sum(i.file_size for i in infos)
        if expanded > max_bytes or expanded > 2 * size + _ZIP_SLACK:
            raise CheckpointError(f"{path}: refused, its {size:,} bytes would expand to {expanded:,} "
                                  "(a zip bomb; torch.save never compresses)")
        names = {i.filename.split("/", 1)[-1] for i in infos}
        if "data.pkl" not in names:
            raise CheckpointError(f"{path}: not a checkpoint (a zip archive without PyTorch's data.pkl)")
        return "zip"
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:  # a pickle's PROTO opcode: torch's legacy format
        return "pickle"
    raise CheckpointError(f"{path}: not a checkpoint (neither a PyTorch zip archive nor a pickle: text or "
                          "random bytes?)")


def _unpickling_message(path: Path, err: Exception) -> str:
    text = " ".join(str(err).split())
    if "GLOBAL" in text or "Unsupported global" in text or "Unsupported class" in text:
        found = text[text.find("GLOBAL"):].split()[1] if "GLOBAL" in text else "a Python object"
        return (f"{path}: unsafe pickle: loading it would run code ({quote(found, 60)}), so it was refused "
                "(torch.load weights_only)")
    return f"{path}: not a checkpoint (unreadable pickle data)"


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


def read_state_dict(path: str | Path, allow_nonfinite: bool = False) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint file, unwrapped and without ``module.`` prefixes.

    Raises ``CheckpointError`` (one line naming the file) for everything ``check_checkpoint_file`` refuses,
    a pickle needing code to load ("unsafe pickle"), a file without a tensor mapping, and NaN or infinite
    weights unless ``allow_nonfinite`` (then it warns with ``NonFiniteWeightsWarning``).
    """
    path = Path(path)
    if path.is_file() and formats.is_safetensors(path):
        size = path.stat().st_size
        if size > MAX_CHECKPOINT_BYTES:
            raise CheckpointError(f"{path}: is {size / 2**30:.1f} GiB; checkpoints above "
                                  f"{MAX_CHECKPOINT_BYTES / 2**30:.1f} GiB are refused")
        try:
            tensors, _ = formats.read_safetensors(path)
        except Exception as err:  # safetensors raises its own error type for a torn or foreign file
            raise CheckpointError(f"{path}: not a readable safetensors file ({str(err).splitlines()[0][:160]})") from None
        if not tensors:
            raise CheckpointError(f"{path}: holds no tensors")
        state = formats.strip_module_prefix(tensors)
    else:
        check_checkpoint_file(path)
        try:
            with formats.metadata_globals():
                obj = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as err:
            raise CheckpointError(_unpickling_message(path, err)) from None
        except Exception as err:  # torch.load on a corrupt or foreign file can raise nearly any type
            raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({err.__class__.__name__})") from None
        obj = formats.unwrap(obj)
        if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
            raise CheckpointError(f"{path}: holds no state_dict (a mapping of names to tensors)")
        if not all(isinstance(k, str) for k in obj):
            raise CheckpointError(f"{path}: holds no state_dict (its keys are not all names)")
        state = formats.strip_module_prefix(obj)
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        what = f"{len(bad)} tensors with NaN or infinite values ({quote(bad[0], 60)}{', ...' if len(bad) > 1 else ''})"
        if not allow_nonfinite:
            raise CheckpointError(f"{path}: {what}; refused (allow them explicitly to inspect a diverged run)")
        warnings.warn(f"{path}: loaded {what}", NonFiniteWeightsWarning, stacklevel=2)
    return state


MISFIT_SHOWN = 5  # keys named per kind of misfit in "does not fit the model"


def _misfit(missing: list[str], unexpected: list[str], shaped: list[str], state: Mapping, own: Mapping) -> str:
    """``1 missing (conv1.weight); 2 unexpected (a, b)``: the count and the first ``MISFIT_SHOWN`` keys of each
    kind of misfit. A checkpoint's names and shapes are untrusted: each goes through ``quote`` (shortened,
    control characters escaped), so the line stays short and inert whatever the file holds."""

    def shown(key: str, label: str) -> str:
        name = quote(key, 60, bare=True)
        if label != "mis-shaped":
            return name
        return f"{name} {quote(tuple(state[key].shape), 40)} vs {tuple(own[key].shape)}"

    parts = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", shaped)):
        if keys:
            more = ", ..." if len(keys) > MISFIT_SHOWN else ""
            parts.append(f"{len(keys)} {label} ({', '.join(shown(k, label) for k in keys[:MISFIT_SHOWN])}{more})")
    return "; ".join(parts)


def load_checkpoint(model: nn.Module, path: str | Path, strict: bool = True,
                    allow_nonfinite: bool = False) -> CheckpointReport:
    """Load ``path`` into ``model`` (values cast to the model's dtypes).

    Keys in timm or mmpose 0.x / 1.x naming are mapped to the official names first (the report's
    ``format``). Strict by default: raises ``CheckpointError`` listing missing, unexpected and mis-shaped
    keys; absent ``num_batches_tracked`` counters alone do not count as missing. Non-strict loads the keys
    whose names and shapes match and reports the rest. NaN or infinite weights are refused unless
    ``allow_nonfinite`` (see ``read_state_dict``).
    """
    raw = read_state_dict(path, allow_nonfinite)
    mapping = formats.detect_mapping(raw)
    state = mapping.apply(raw)
    own = model.state_dict()
    absent_counters = [k for k in own if k not in state and k.endswith("num_batches_tracked")]
    state |= {k: own[k] for k in absent_counters}
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shaped = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if strict and (missing or unexpected or shaped):
        raise CheckpointError(f"{path}: does not fit the model: " + _misfit(missing, unexpected, shaped, state, own))
    usable = {k: v.to(own[k].dtype) for k, v in state.items() if k in own and k not in shaped}
    model.load_state_dict(usable, strict=strict)
    return CheckpointReport(str(path), len(usable) - len(absent_counters), tuple(missing + shaped), tuple(unexpected),
                            mapping.label, len(absent_counters))
