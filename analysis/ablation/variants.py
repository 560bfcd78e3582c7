"""Fusion schedules of ablation variants: per-stage 0/1 flags, one per module (Sun et al. 2019, section 4.4)."""

from __future__ import annotations

import re

import hrnet_core as hc
from hrnet_core.errors import UserInputError


class VariantError(UserInputError):
    """A variant list or schedule that does not fit the base config."""


def stage_modules(base: hc.HRNetConfig) -> tuple[int, ...]:
    """Modules per stage of ``base`` (stages 2 ... 4)."""
    return tuple(st.modules for st in base.stages)


def bits_schedule(bits: str, base: hc.HRNetConfig, where: str) -> tuple[tuple[bool, ...], ...]:
    """``1/1001/001`` (per stage) or ``11001001`` / ``1,1,0,0,1,0,0,1`` (flat) -> per-stage flags."""
    mods = stage_modules(base)
    s = bits.replace(" ", "")
    if "/" in s:
        parts = s.split("/")
        if len(parts) != len(mods) or any(len(p) != m for p, m in zip(parts, mods)):
            raise VariantError(f"{where}: schedule {bits!r} must give {'/'.join('x' * m for m in mods)} "
                               f"(one 0/1 per module of stages with {list(mods)} modules)")
        flat = "".join(parts)
    else:
        flat = s.replace(",", "")
    if not re.fullmatch(r"[01]+", flat or "x"):
        raise VariantError(f"{where}: schedule {bits!r} must be 0/1 flags, one per module")
    if len(flat) != sum(mods):
        raise VariantError(f"{where}: schedule {bits!r} has {len(flat)} flags; the base has {sum(mods)} modules "
                           f"({list(mods)} per stage)")
    out, i = [], 0
    for m in mods:
        out.append(tuple(c == "1" for c in flat[i:i + m]))
        i += m
    return tuple(out)
