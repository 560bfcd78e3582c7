"""The stable keys of an HRNet's parts and feature maps (``hrnet_core.graph``), spelled in this one place."""

from __future__ import annotations

PART_KINDS = ("stem", "layer1", "transition", "branch", "fusion", "head")


def part_key(kind: str, stage: int | None = None, module: int | None = None, branch: int | None = None,
             source: int | None = None, name: str | None = None) -> str:
    """The stable key of a part (see the module table); ``stage`` is the stage number 2 .. 4."""
    if kind in ("stem", "layer1"):
        return kind
    if kind == "transition":
        return f"transition{stage - 1}.branch{branch}"
    if kind == "branch":
        return f"stage{stage}.module{module}.branch{branch}"
    if kind == "fusion":
        return f"stage{stage}.module{module}.fuse.{branch}<-{source}"
    if kind == "head":
        return f"head.{name}"
    raise ValueError(f"kind: unknown {kind!r}; expected one of {', '.join(PART_KINDS)}")


def module_key(stage: int | str, module: int) -> str:
    """The key of an exchange module: ``stage3.module1`` (0-based module)."""
    name = stage if isinstance(stage, str) else f"stage{stage}"
    return f"{name}.module{module}"


def output_key(stage: int | str, module: int, branch: int) -> str:
    """The key of a module's output on ``branch`` (``HRNet.forward_intermediates``): ``stage3.module1.branch2``."""
    return f"{module_key(stage, module)}.branch{branch}"


def split_output_key(key: str) -> tuple[str, str, int]:
    """``(stage, module key, branch)`` of a ``forward_intermediates`` key: ``stem`` -> ``("stem", "stem", 0)``,
    ``layer1`` -> ``("stage1", "layer1", 0)``, ``stage3.module1.branch2`` -> ``("stage3", "stage3.module1", 2)``.
    ``ValueError`` naming the key for anything else."""
    if key in ("stem", "layer1"):
        return ("stem" if key == "stem" else "stage1"), key, 0
    parts = key.split(".")
    if len(parts) != 3 or not parts[1].startswith("module") or not parts[2].startswith("branch"):
        raise ValueError(f"not a feature-map key: {key!r}")
    return parts[0], f"{parts[0]}.{parts[1]}", int(parts[2][len("branch"):])
