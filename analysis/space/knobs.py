"""What a design space varies: one ``IntKnob``, ``FloatKnob`` or ``ChoiceKnob`` per sampled key, and how a value
is drawn from it with a seeded ``numpy.random.Generator`` (never the global RNG).

The distributions follow pycls (facebookresearch/pycls, ``pycls/sweep/random.py``; Radosavovic et al. 2020,
"Designing Network Design Spaces", and 2019, "On Network Design Spaces for Visual Recognition", sec. 3), on the
closed range ``[low, high]`` quantized to ``step`` (int knobs; ``low`` and ``high`` multiples of it):

- ``uniform``: ``f ~ U[low, high + step)``, floored to a multiple of ``step``: every allowed value equally likely;
- ``log_uniform``: ``log f`` uniform on ``(log(low - min(step, low / 2)), log high]``, ceiled to a multiple of
  ``step`` (pycls' quantization, so ``low`` keeps its share); needs ``low > 0``;
- ``power2`` (int only): ``2**k`` with ``k`` uniform on the integers ``log2 low .. log2 high`` (both powers of 2);
- ``normal``: a normal (``mean``, ``std``; pycls' defaults ``(low + high) / 2`` and ``(high - low) / 6``)
  truncated to ``[low, high]`` (``scipy.stats.truncnorm``), rounded to a multiple of ``step`` for int knobs.

Float knobs draw the continuous values (``uniform``, ``log_uniform``, ``normal``). A ``choice`` is uniform over its
values. When the base's value at the key is a list of numbers, an int or float knob draws each entry independently
(pycls ``list_sampler``), keeping the base's length.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np

INT_DISTS = ("uniform", "log_uniform", "power2", "normal")
FLOAT_DISTS = ("uniform", "log_uniform", "normal")


@dataclass(frozen=True)
class IntKnob:
    """Integers in ``[low, high]`` (multiples of ``step``) drawn by ``dist`` (module docstring). ``key``: the dotted
    key as the space file writes it; ``path``: where it lands in the base mapping; ``per_entry``: the base's value is
    a list of that many numbers, each drawn on its own (0: a single number)."""

    key: str
    path: tuple
    low: int
    high: int
    dist: str = "uniform"
    step: int = 1
    mean: float | None = None
    std: float | None = None
    per_entry: int = 0

    kind = "int"

    def values(self) -> list[int]:
        """The values the knob can take, lowest first (at most 1000 of them, evenly spread, for the checks)."""
        if self.dist == "power2":
            return [2**k for k in range(int(math.log2(self.low)), int(math.log2(self.high)) + 1)]
        count = (self.high - self.low) // self.step + 1
        picks = range(count) if count <= 1000 else np.linspace(0, count - 1, 1000).round().astype(int)
        return [self.low + int(i) * self.step for i in picks]

    def draw_one(self, rng: np.random.Generator) -> int:
        """One value (pycls ``pycls/sweep/random.py``: ``uniform``, ``log_uniform``, ``power2_uniform``, ``normal``)."""
        lo, hi, q = self.low, self.high, self.step
        if lo == hi:
            return lo
        if self.dist == "uniform":
            v = math.floor(rng.uniform(lo, hi + q) / q) * q
        elif self.dist == "log_uniform":
            f = math.exp(-rng.uniform(-math.log(hi), -math.log(lo - min(q, lo / 2))))
            v = math.ceil(f / q) * q
        elif self.dist == "power2":
            v = 2 ** math.floor(rng.uniform(math.log2(lo), math.log2(hi) + 1))
        else:
            v = round(truncated_normal(rng, lo, hi, self.mean, self.std) / q) * q
        return int(min(max(v, lo), hi))

    def draw(self, rng: np.random.Generator):
        """A value for the key: one int, or a list of ``per_entry`` ints."""
        return [self.draw_one(rng) for _ in range(self.per_entry)] if self.per_entry else self.draw_one(rng)

    def to_dict(self) -> dict:
        """The knob as the space file writes it (``space.yaml`` of a space folder)."""
        out = {"int": [self.low, self.high], "dist": self.dist}
        if self.step != 1:
            out["step"] = self.step
        if self.dist == "normal":
            out.update(mean=self.mean, std=self.std)
        return out


@dataclass(frozen=True)
class FloatKnob:
    """Real numbers in ``[low, high]`` drawn by ``dist`` (``uniform``, ``log_uniform``, ``normal``); fields as
    ``IntKnob``'s."""

    key: str
    path: tuple
    low: float
    high: float
    dist: str = "uniform"
    mean: float | None = None
    std: float | None = None
    per_entry: int = 0

    kind = "float"

    def values(self) -> list[float]:
        """Two representative values for the checks: ``low`` and ``high``."""
        return [self.low, self.high]

    def draw_one(self, rng: np.random.Generator) -> float:
        """One value: ``U[low, high]``, ``exp U[log low, log high]`` or the truncated normal."""
        lo, hi = self.low, self.high
        if lo == hi:
            return lo
        if self.dist == "uniform":
            v = rng.uniform(lo, hi)
        elif self.dist == "log_uniform":
            v = math.exp(rng.uniform(math.log(lo), math.log(hi)))
        else:
            v = truncated_normal(rng, lo, hi, self.mean, self.std)
        return float(min(max(v, lo), hi))

    def draw(self, rng: np.random.Generator):
        """A value for the key: one float, or a list of ``per_entry`` floats."""
        return [self.draw_one(rng) for _ in range(self.per_entry)] if self.per_entry else self.draw_one(rng)

    def to_dict(self) -> dict:
        """The knob as the space file writes it."""
        out = {"float": [self.low, self.high], "dist": self.dist}
        if self.dist == "normal":
            out.update(mean=self.mean, std=self.std)
        return out


@dataclass(frozen=True)
class ChoiceKnob:
    """One of ``choices`` (plain YAML values, JSON text kept so the knob stays immutable), uniformly."""

    key: str
    path: tuple
    choices: tuple[str, ...]  # each value as canonical JSON text

    kind = "choice"

    def values(self) -> list:
        """The values, in the space file's order."""
        return [json.loads(c) for c in self.choices]

    def draw(self, rng: np.random.Generator):
        """One of the values (a fresh copy)."""
        return json.loads(self.choices[int(rng.integers(len(self.choices)))])

    def index(self, value) -> int | None:
        """The position of ``value`` among the choices (the x of a knob plot), or None."""
        text = json.dumps(value, sort_keys=True, separators=(",", ":"))
        return self.choices.index(text) if text in self.choices else None

    def to_dict(self) -> dict:
        """The knob as the space file writes it."""
        return {"choice": self.values()}


def truncated_normal(rng: np.random.Generator, low: float, high: float, mean: float, std: float) -> float:
    """A draw of N(``mean``, ``std``) truncated to ``[low, high]`` (``scipy.stats.truncnorm``, exact: no
    redraw loop)."""
    from scipy.stats import truncnorm

    a, b = (low - mean) / std, (high - mean) / std
    return float(truncnorm.rvs(a, b, loc=mean, scale=std, random_state=rng))


__all__ = ["FLOAT_DISTS", "INT_DISTS", "ChoiceKnob", "FloatKnob", "IntKnob", "truncated_normal"]
