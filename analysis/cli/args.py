"""Argument checks shared by the CLI commands: bounded numbers (argparse ``type=`` callables, so a bad
value is the usual one-line usage error, exit 2) and output paths checked before any work starts."""

from __future__ import annotations

import argparse
import math
import os
import uuid
from pathlib import Path

from hrnet_core.errors import UserInputError, quote


def bounded_int(lo: int, hi: int):
    """An argparse type: an integer in ``lo..hi`` (``1e23`` or ``2**70`` are refused, never overflow later)."""

    def parse(text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer in {lo}..{hi}, got {quote(text)}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must be an integer in {lo}..{hi}, got {quote(value)}")
        return value

    parse.__name__ = "int"
    return parse


def finite_float(text: str) -> float:
    """An argparse type: a finite number (``nan`` and ``inf`` are refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {quote(text)}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {quote(text)}")
    return value


def _why(err: OSError) -> str:
    return err.strerror or err.__class__.__name__


def _takes_files(folder: Path) -> bool:
    """Whether a file can be created in ``folder`` (a probe, removed again): ``os.access`` says yes for root
    in a read-only mount or in ``/proc``, where creating a file still fails."""
    probe = folder / f".hrnet-explorer-probe.{os.getpid()}.{uuid.uuid4().hex[:8]}"
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError:
        return False
    try:
        probe.unlink()
    except OSError:
        pass
    return True


def check_count(value: int, flag: str, upper: int) -> int:
    """``value`` if it is in 1..``upper``; else ``UserInputError`` naming ``flag``."""
    if value <= 0:
        raise UserInputError(f"{flag}: must be a positive integer, got {quote(value)}")
    if value > upper:
        raise UserInputError(f"{flag}: {quote(value)} exceeds the maximum {upper}")
    return value


def output_dir(path: str | Path, flag: str, keep: bool = True) -> Path:
    """The folder ``path``, created with its parents, and writable; else ``UserInputError`` naming ``flag``.

    ``keep=False`` only proves it can be created: the folders made for the test are removed again (so a
    request refused later leaves nothing behind)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserInputError(f"{flag} {path}: exists and is not a folder")
    made = [p for p in (path, *path.parents) if not p.exists()]
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserInputError(f"{flag} {path}: cannot create the folder ({_why(err)})") from None
    writable = os.access(path, os.W_OK | os.X_OK) and _takes_files(path)
    if not keep:
        for p in made:  # deepest first
            try:
                p.rmdir()
            except OSError:
                break
    if not writable:
        raise UserInputError(f"{flag} {path}: the folder is not writable")
    return path


def output_file(path: str | Path, flag: str) -> Path:
    """The file ``path`` to be written: its folder created and writable, and not itself a folder; else
    ``UserInputError`` naming ``flag``."""
    path = Path(path)
    if path.is_dir():
        raise UserInputError(f"{flag} {path}: is a folder, not a file name")
    output_dir(path.parent if str(path.parent) else Path("."), flag)
    if path.exists() and not os.access(path, os.W_OK):
        raise UserInputError(f"{flag} {path}: the file is not writable")
    return path


def check_box(box, image_hw: tuple[int, int]) -> tuple[float, float, float, float]:
    """``--box X Y W H`` (pixels): a positive size, inside the ``(H, W)`` image; else ``UserInputError``."""
    x, y, w, h = box
    height, width = image_hw
    if w <= 0 or h <= 0:
        raise UserInputError(f"--box: width and height must be positive, got {w:g} x {h:g}")
    if x < 0 or y < 0 or x + w > width or y + h > height:
        raise UserInputError(f"--box: {x:g} {y:g} {w:g} {h:g} is not inside the {width}x{height} image")
    return (x, y, w, h)
