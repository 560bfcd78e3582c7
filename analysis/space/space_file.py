"""The space file: a YAML design space, read by the project's bounded YAML reader (``hrnet_core.safe_yaml``) and
validated into a frozen ``Space`` at the edge. Every problem is a ``SpaceError``: one line naming the file and
the field (``space.yaml: sample.width.int: low 64 is above high 8``)::

    name: fusion_all                       # letters, digits, _ . - (default: the file's name)
    base: configs/pose_hrnet_w32_256x192.yaml   # a preset name, a path (relative to this file, else the project),
                                           # an mmpose .py config, or an inline concise config; any network
    samples: 100                           # 1 .. 1e6 (default 100)
    seed: 0                                # default 0
    sample:                                # one entry per key of the base's concise config (dotted paths)
      width: {int: [8, 64], dist: log_uniform}   # dist: uniform (default) | log_uniform | power2 | normal
      blocks: {int: [1, 4]}                      # step: k for multiples of k; mean / std with normal
      modules: {choice: [[1, 1, 1], [1, 4, 3]]}
      head.final_conv_kernel: {choice: [1, 3]}
    constraints:                           # min / max (inclusive) on the sampled configs
      params: {max: 10.0e6}                # parameters
      gflops: {min: 0.1, max: 6.0}         # paper convention: Conv2d + Linear multiply-adds / 2**30
      activations: {max: 5.0e7}            # elements (analysis.complexity)
      latency_ms: {max: 50}                # batch-1 fast-path latency (needs --latency)

Keys are checked against the base when the file is read, not when sampling: a key the base's concise schema does
not know, a value kind it refuses for every allowed value (``width: {float: ...}``), or a knob whose values all
build the same model, is an error here. Distributions: ``analysis.space.knobs``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

import hrnet_core as hc
from analysis.space.base_mapping import (
    SHORTHAND_KEYS,
    KeyPathError,
    concise_mapping,
    field_path,
    get_path,
    resolve_base,
    resolve_key,
    sample_id,
    set_path,
    shorthand_mapping,
)
from analysis.space.knobs import FLOAT_DISTS, INT_DISTS, ChoiceKnob, FloatKnob, IntKnob
from hrnet_core.errors import quote
from hrnet_core.networks.model_config import NetworkConfig
from hrnet_core.safe_yaml import read_yaml_file

MAX_SAMPLES = 1_000_000
MAX_SEED = 2**63 - 1
MAX_KNOBS = 64
MAX_CHOICES = 1000
MAX_INT = 10**9  # no knob of any network needs more
METRICS = {
    "params": "parameters",
    "gflops": "GFLOPs, paper convention (Conv2d + Linear multiply-adds / 2**30, batch 1)",
    "activations": "activation elements (analysis.complexity)",
    "latency_ms": "batch-1 latency of the fast path, ms (median)",
}
TOP_KEYS = ("name", "base", "samples", "seed", "sample", "constraints")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class SpaceError(hc.ConfigError):
    """A space file that cannot be used; ``field`` names the file and the entry (``ConfigError``'s form)."""


@dataclass(frozen=True)
class Bound:
    """``low <= metric <= high`` (either may be None: no bound), ``metric`` one of ``METRICS``."""

    metric: str
    low: float | None = None
    high: float | None = None

    def failure(self, value: float) -> str | None:
        """``"min"`` or ``"max"``: the side ``value`` falls outside, or None when it is inside."""
        if self.low is not None and value < self.low:
            return "min"
        if self.high is not None and value > self.high:
            return "max"
        return None

    def to_dict(self) -> dict:
        """The constraint as the space file writes it."""
        return {k: v for k, v in (("min", self.low), ("max", self.high)) if v is not None}


@dataclass(frozen=True)
class Space:
    """A validated design space. ``base_text``: the base's concise mapping as JSON (with the shorthand HRNet keys
    when a knob samples one of them), that each draw copies and sets the knobs in; ``source``: the file it was read
    from (``<mapping>`` for a mapping); ``base_label``: what ``base`` said."""

    name: str
    base: object  # HRNetConfig | NetworkConfig
    base_label: str
    base_text: str
    samples: int
    seed: int
    knobs: tuple
    constraints: tuple[Bound, ...]
    source: str

    def base_mapping(self) -> dict:
        """A fresh copy of the mapping each draw starts from."""
        return json.loads(self.base_text)

    def bound(self, metric: str) -> Bound | None:
        """The constraint on ``metric``, or None."""
        return next((b for b in self.constraints if b.metric == metric), None)

    def knob(self, key: str):
        """The knob of the dotted ``key`` as the space file writes it, or None."""
        return next((k for k in self.knobs if k.key == key), None)

    def to_yaml(self, samples: int | None = None, seed: int | None = None) -> str:
        """The space as read, as YAML that ``read_space`` reads back to the same space: defaults written out, the
        base inlined as its concise config (so the folder does not depend on the preset staying as it is), and
        ``samples`` / ``seed`` as given (the command line's, when it overrode the file's)."""
        doc = {
            "name": self.name,
            "base": concise_mapping(self.base),
            "samples": self.samples if samples is None else samples,
            "seed": self.seed if seed is None else seed,
            "sample": {k.key: k.to_dict() for k in self.knobs},
            "constraints": {b.metric: b.to_dict() for b in self.constraints},
        }
        head = f"# design space {self.name}, read from {self.source}; base: {self.base_label}\n"
        return head + yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=110)


def read_space(path: str | Path) -> Space:
    """The space in the YAML file ``path`` (module docstring). Raises ``SpaceError`` (or ``ConfigError`` for the
    file itself: missing, too large, not YAML), one line naming the file and the field."""
    path = Path(path)
    data = read_yaml_file(path, "space")
    return parse_space(data, str(path), path.parent, default_name=path.stem)


def parse_space(data, source: str = "<mapping>", folder: Path | None = None, default_name: str = "space") -> Space:
    """A ``Space`` from the parsed mapping ``data``; ``source`` names it in errors, ``folder`` resolves a relative
    ``base``. Raises ``SpaceError``."""

    def fail(field: str, message: str):
        raise SpaceError(f"{source}: {field}" if field else source, message)

    if not isinstance(data, Mapping):
        fail("", f"a space file is a YAML mapping, got {type(data).__name__}")
    unknown = [k for k in data if k not in TOP_KEYS]
    if unknown:
        fail(str(unknown[0]), f"unknown key; allowed: {', '.join(TOP_KEYS)}")
    name = data.get("name", default_name)
    if not isinstance(name, str) or not NAME_RE.match(name):
        fail("name", f"must be 1-64 letters, digits, _ . - (starting with a letter or digit), got {quote(name)}")
    if "base" not in data:
        fail("base", "is missing: a preset name, a config path or a config mapping")
    try:
        base, label = resolve_base(data["base"], folder or Path("."))
    except KeyPathError as err:
        fail("base", str(err))
    except hc.ConfigError as err:
        fail("base", str(err))
    samples = _count(data.get("samples", 100), "samples", fail)
    seed = data.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        fail("seed", f"must be an integer in 0..2**63-1, got {quote(seed)}")
    raw = data.get("sample")
    if not isinstance(raw, Mapping) or not raw:
        fail("sample", "must be a mapping of at least one key: {int: [lo, hi]} | {float: [lo, hi]} | {choice: [...]}")
    if len(raw) > MAX_KNOBS:
        fail("sample", f"has {len(raw)} keys; at most {MAX_KNOBS}")
    mapping = _start_mapping(base, list(raw), fail)
    knobs = []
    paths = {}
    for key, spec in raw.items():
        where = f"sample.{key}"
        try:
            path = resolve_key(mapping, key)
        except KeyPathError as err:
            fail(where, f"unknown key for base {base.name}: {err}")
        clash = next((other for other, p in paths.items() if _overlap(p, path)), None)
        if clash is not None:
            fail(where, f"overlaps sample.{clash}: each value is sampled by one key")
        paths[key] = path
        knob = _knob(key, path, spec, get_path(mapping, path), where, fail)
        _probe(knob, mapping, base, where, fail)
        knobs.append(knob)
    constraints = _constraints(data.get("constraints", {}), fail)
    return Space(name=name, base=base, base_label=label, base_text=json.dumps(mapping), samples=samples, seed=seed,
                 knobs=tuple(knobs), constraints=constraints, source=source)


def check_count(value, field: str) -> int:
    """``value`` if it is a sample count in 1..``MAX_SAMPLES``; else ``SpaceError`` naming ``field``."""

    def fail(f, message):
        raise SpaceError(f, message)

    return _count(value, field, fail)


def _count(value, field, fail) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        fail(field, f"must be a positive integer (at most {MAX_SAMPLES:,}), got {quote(value)}")
    if value > MAX_SAMPLES:
        fail(field, f"{value:,} exceeds the maximum {MAX_SAMPLES:,}")
    return value


def _start_mapping(base, keys: list, fail) -> dict:
    """The base's concise mapping; for the classic HRNet in the shorthand form when a key samples ``width``,
    ``modules``, ``blocks`` or ``block`` (which replace the explicit stages)."""
    heads = [str(k).split(".")[0] for k in keys]
    short = [k for k, h in zip(keys, heads) if h in SHORTHAND_KEYS]
    if not short:
        return concise_mapping(base)
    if isinstance(base, NetworkConfig):
        fail(f"sample.{short[0]}", f"unknown key for arch {base.arch}: {short[0].split('.')[0]} is a classic HRNet "
             f"key; sample the backbone's (e.g. {', '.join(k.key for k in base.spec.knobs[:2])})")
    explicit = next((k for k, h in zip(keys, heads) if h == "stages"), None)
    if explicit is not None:
        fail(f"sample.{explicit}", f"cannot be combined with sample.{short[0]}: the shorthand keys replace the "
             "explicit stages")
    try:
        return shorthand_mapping(base)
    except KeyPathError as err:
        fail(f"sample.{short[0]}", f"the base {base.name} cannot be written with width/modules/blocks/block: {err}; "
             "sample stages.<i>.<field> instead")


def _overlap(a: tuple, b: tuple) -> bool:
    n = min(len(a), len(b))
    return a[:n] == b[:n]


def _number_list(base_value) -> int:
    """The length of the base's value when it is a non-empty list of plain numbers, else 0."""
    if isinstance(base_value, list) and base_value and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in base_value):
        return len(base_value)
    return 0


def _knob(key, path, spec, base_value, where, fail):
    if not isinstance(spec, Mapping):
        fail(where, f"must be a mapping {{int: [lo, hi]}} | {{float: [lo, hi]}} | {{choice: [...]}}, got {quote(spec)}")
    kinds = [k for k in ("int", "float", "choice") if k in spec]
    if len(kinds) != 1:
        fail(where, "needs exactly one of int, float, choice" + (f" (got {', '.join(kinds)})" if kinds else ""))
    kind = kinds[0]
    allowed = {"int": ("int", "dist", "step", "mean", "std"), "float": ("float", "dist", "mean", "std"),
               "choice": ("choice",)}[kind]
    extra = [k for k in spec if k not in allowed]
    if extra:
        fail(f"{where}.{extra[0]}", f"does not apply to a {kind} knob; allowed: {', '.join(allowed)}")
    if kind == "choice":
        return _choice(key, path, spec["choice"], f"{where}.choice", fail)
    rng = spec[kind]
    if not isinstance(rng, list) or len(rng) != 2:
        fail(f"{where}.{kind}", f"must be [low, high], got {quote(rng)}")
    for i, v in enumerate(rng):
        ok = (isinstance(v, int) if kind == "int" else isinstance(v, (int, float))) and not isinstance(v, bool)
        if not ok or not math.isfinite(v) or abs(v) > MAX_INT:
            fail(f"{where}.{kind}[{i}]", f"must be {'an integer' if kind == 'int' else 'a finite number'} "
                 f"of at most {MAX_INT:.0e} in size, got {quote(v)}")
    lo, hi = rng
    if lo > hi:
        fail(f"{where}.{kind}", f"low {lo} is above high {hi}")
    dist = spec.get("dist", "uniform")
    dists = INT_DISTS if kind == "int" else FLOAT_DISTS
    if dist not in dists:
        hint = " (power2 is for int knobs)" if dist == "power2" else ""
        fail(f"{where}.dist", f"{quote(dist)} is not a {kind} distribution; expected one of {', '.join(dists)}{hint}")
    step = spec.get("step", 1)
    if kind == "int":
        if isinstance(step, bool) or not isinstance(step, int) or not 1 <= step <= MAX_INT:
            fail(f"{where}.step", f"must be a positive integer, got {quote(step)}")
        if "step" in spec and dist == "power2":
            fail(f"{where}.step", "does not apply to power2 (its values are the powers of 2 in [low, high])")
        if lo % step or hi % step:
            fail(f"{where}.int", f"low and high must be multiples of step {step} (pycls' rule), got [{lo}, {hi}]")
    if dist in ("log_uniform", "power2") and lo <= 0:
        fail(f"{where}.{kind}", f"{dist} needs low > 0, got {lo}")
    if dist == "power2" and any(v & (v - 1) for v in (lo, hi)):
        fail(f"{where}.int", f"power2 needs low and high powers of 2, got [{lo}, {hi}]")
    mean, std = spec.get("mean"), spec.get("std")
    if dist != "normal":
        given = next((k for k in ("mean", "std") if k in spec), None)
        if given:
            fail(f"{where}.{given}", "applies to dist: normal only")
    else:
        mean = (lo + hi) / 2 if mean is None else mean
        std = (hi - lo) / 6 if std is None else std
        for name, v in (("mean", mean), ("std", std)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                fail(f"{where}.{name}", f"must be a finite number, got {quote(v)}")
        if not lo <= mean <= hi:
            fail(f"{where}.mean", f"{mean} is outside [{lo}, {hi}]")
        if std <= 0 and lo != hi:
            fail(f"{where}.std", f"must be positive, got {std}")
        mean, std = float(mean), float(std) if std > 0 else 1.0
    per_entry = _number_list(base_value)
    if kind == "int":
        return IntKnob(key, path, lo, hi, dist, step, mean, std, per_entry)
    return FloatKnob(key, path, float(lo), float(hi), dist, mean, std, per_entry)


def _choice(key, path, values, where, fail) -> ChoiceKnob:
    if not isinstance(values, list) or not values:
        fail(where, f"must be a non-empty list of values, got {quote(values)}")
    if len(values) > MAX_CHOICES:
        fail(where, f"has {len(values)} values; at most {MAX_CHOICES}")
    texts = []
    for i, v in enumerate(values):
        text = json.dumps(v, sort_keys=True, separators=(",", ":"))
        if text in texts:
            fail(f"{where}[{i}]", f"repeats {where}[{texts.index(text)}] ({quote(v)})")
        texts.append(text)
    return ChoiceKnob(key, path, tuple(texts))


def _field_at(err_field: str, field: str) -> bool:
    return err_field == field or err_field.startswith((f"{field}.", f"{field}["))


def _probe(knob, mapping: dict, base, where: str, fail) -> None:
    """Refuse now what every draw would refuse: parse the base with the knob set to each of (up to 1000 of) its
    values. A key the schema does not know, or a value kind it refuses at this key for every value, is an error; so
    is a knob whose values all give the same model (the schema reads the key but the model does not change)."""
    values = knob.values()
    if len(values) > 8:  # the ends and a few between: enough to tell a kind the schema refuses
        values = [values[i] for i in sorted({round(j * (len(values) - 1) / 7) for j in range(8)})]
    field = field_path(knob.path)
    errors, built = [], []
    for v in values:
        m = json.loads(json.dumps(mapping))
        set_path(m, knob.path, [v] * knob.per_entry if getattr(knob, "per_entry", 0) else v)
        try:
            built.append(hc.load_config(m))
        except hc.ConfigError as err:
            if err.message.startswith("unknown key"):
                fail(where, f"unknown key for base {base.name}: {err}")
            errors.append(err)
    if not built:
        err = next((e for e in errors if _field_at(e.field, field)), None)
        if err is not None:
            fail(where, f"the base {base.name} takes none of these values: {err}")
    elif len({sample_id(c)[0] for c in built}) == 1 and len(values) > 1:
        fail(where, f"does not change the model of base {base.name}: every value gives the same config")


def _constraints(raw, fail) -> tuple[Bound, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        fail("constraints", f"must be a mapping of {', '.join(METRICS)} to {{min, max}}, got {quote(raw)}")
    out = []
    for metric, spec in raw.items():
        where = f"constraints.{metric}"
        if metric not in METRICS:
            fail(where, f"unknown metric; allowed: {', '.join(METRICS)}")
        if not isinstance(spec, Mapping) or not spec:
            fail(where, f"must be a mapping {{min: x, max: y}}, got {quote(spec)}")
        extra = [k for k in spec if k not in ("min", "max")]
        if extra:
            fail(f"{where}.{extra[0]}", "unknown key; allowed: min, max")
        for k, v in spec.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                fail(f"{where}.{k}", f"must be a finite number >= 0, got {quote(v)}")
        lo, hi = spec.get("min"), spec.get("max")
        if lo is not None and hi is not None and lo > hi:
            fail(where, f"min {lo} is above max {hi}")
        out.append(Bound(metric, None if lo is None else float(lo), None if hi is None else float(hi)))
    return tuple(out)


__all__ = ["MAX_SAMPLES", "METRICS", "Bound", "Space", "SpaceError", "check_count", "parse_space", "read_space"]
