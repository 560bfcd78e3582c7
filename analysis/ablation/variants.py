"""Fusion schedules of ablation variants: per-stage 0/1 flags, one per module (Sun et al. 2019, section 4.4)."""

from __future__ import annotations

import re

import hrnet_core as hc
from analysis.ablation.files import RUN_FILE_NAMES
from hrnet_core.errors import UserInputError, quote

# A variant names its job folder (``RUN/<variant>/seed<k>``): one path component, never ``.`` or ``..``,
# no leading dot (the run folder's own hidden files), none of the run folder's file names.
_NAME_RE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,79}")


class VariantError(UserInputError):
    """A variant list or schedule that does not fit the base config."""


def check_variant_name(name: object, where: str) -> str:
    """``name`` if it can name a job folder inside a run folder; else ``VariantError`` at ``where``.

    Letters, digits, ``_``, ``-`` and ``.`` (not first), at most 80 characters, and not a file name of
    the run folder itself (``ablation.json``, ``report.md``...): so ``RUN/<name>/seed<k>`` never leaves
    the run folder nor replaces one of its files."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise VariantError(f"{where}: variant name {quote(name)}: use letters, digits, '_', '-' and '.' "
                           "(not first), at most 80")
    if name in RUN_FILE_NAMES:
        raise VariantError(f"{where}: variant name {quote(name)} is a file name of the run folder itself")
    return name


def stage_modules(base: hc.HRNetConfig) -> tuple[int, ...]:
    """Modules per stage of ``base`` (stages 2 ... 4)."""
    return tuple(base.stage_modules)


def bits_schedule(bits: str, base: hc.HRNetConfig, where: str) -> tuple[tuple[bool, ...], ...]:
    """``1/1001/001`` (per stage) or ``11001001`` / ``1,1,0,0,1,0,0,1`` (flat) -> per-stage flags."""
    mods = stage_modules(base)
    if not isinstance(bits, str):
        raise VariantError(f"{where}: schedule {quote(bits)} must be a string of 0/1 flags")
    s = bits.replace(" ", "")
    if "/" in s:
        parts = s.split("/")
        if len(parts) != len(mods) or any(len(p) != m for p, m in zip(parts, mods)):
            raise VariantError(f"{where}: schedule {quote(bits)} must give {'/'.join('x' * m for m in mods)} "
                               f"(one 0/1 per module of stages with {list(mods)} modules)")
        flat = "".join(parts)
    else:
        flat = s.replace(",", "")
    if not re.fullmatch(r"[01]+", flat or "x"):
        raise VariantError(f"{where}: schedule {quote(bits)} must be 0/1 flags, one per module")
    if len(flat) != sum(mods):
        raise VariantError(f"{where}: schedule {quote(bits)} has {len(flat)} flags; the base has {sum(mods)} modules "
                           f"({list(mods)} per stage)")
    out, i = [], 0
    for m in mods:
        out.append(tuple(c == "1" for c in flat[i:i + m]))
        i += m
    return tuple(out)
