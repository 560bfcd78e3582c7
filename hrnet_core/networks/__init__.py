"""The networks of the HRNet family, one folder each, behind one registry (``registry``)."""

from .registry import (
    BUILTIN_NETWORKS,
    Knob,
    NetworkSpec,
    PartCount,
    PartPlan,
    mmpose_types,
    network_names,
    network_spec,
    register,
    spec_for_mmpose_type,
    unregister,
)


def load_builtin() -> None:
    """Import the built-in network folders, each of which registers itself (kept out of this package's import so
    ``hrnet_core.config`` and the registry never wait on torch modules they do not need)."""
    import importlib

    for name in BUILTIN_NETWORKS:
        importlib.import_module(f"{__name__}.{name}")


__all__ = ["load_builtin", "BUILTIN_NETWORKS", "Knob", "NetworkSpec", "PartCount", "PartPlan", "mmpose_types", "network_names",
           "network_spec", "register", "spec_for_mmpose_type", "unregister"]
