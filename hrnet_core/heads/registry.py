"""The head registry: one ``HeadSpec`` per head kind, registered by the head's own file.

Adding a head kind = one file under ``hrnet_core/heads/`` that defines the ``nn.Module`` and calls
``register(HeadSpec(...))``, one import line in ``hrnet_core/heads/__init__.py``, and (for official checkpoints)
its mapping in ``hrnet_core/official_yaml.py``. Everything else (config validation, ``build_model``,
``count_params``, ``hrnet_core.architecture`` and the analyses reading it) looks the kind up here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

# build(family, head_config, final branch channels, align_corners) -> the head module
HeadBuilder = Callable[[str, object, tuple[int, ...], bool], nn.Module]


@dataclass(frozen=True)
class HeadSpec:
    """A head kind: ``build`` makes the module (its children carry the official state_dict names, registered
    at the model's top level), ``fields`` are the ``HeadConfig`` fields it reads, ``state_dict_names`` its
    official top-level names, ``reads_branch0`` whether it reads the 1/4 branch only (then the last exchange
    module fuses into branch 0 alone, as the official code builds it)."""

    kind: str
    build: HeadBuilder
    fields: tuple[str, ...] = ("outputs",)
    state_dict_names: tuple[str, ...] = ()
    reads_branch0: bool = False


# The built-in kinds, in the order error messages and the app list them.
BUILTIN_KINDS = ("v1", "v2", "v2p", "cls", "ocr", "higher")
_SPECS: dict[str, HeadSpec] = {}


def register(spec: HeadSpec) -> HeadSpec:
    """Add (or replace) the head kind ``spec.kind``; returns ``spec``."""
    _SPECS[spec.kind] = spec
    return spec


def unregister(kind: str) -> None:
    """Remove a head kind (a test's throwaway head); unknown kinds are ignored."""
    _SPECS.pop(kind, None)


def head_kinds() -> tuple[str, ...]:
    """Every registered kind: the built-in ones in ``BUILTIN_KINDS`` order, then others as registered."""
    return tuple(k for k in BUILTIN_KINDS if k in _SPECS) + tuple(k for k in _SPECS if k not in BUILTIN_KINDS)


def head_spec(kind: str) -> HeadSpec:
    """The spec of ``kind``; ``KeyError`` naming the known kinds if it is not registered."""
    try:
        return _SPECS[kind]
    except KeyError:
        raise KeyError(f"head.kind: unknown {kind!r}; expected one of {', '.join(head_kinds())}") from None


__all__ = ["BUILTIN_KINDS", "HeadBuilder", "HeadSpec", "head_kinds", "head_spec", "register", "unregister"]
