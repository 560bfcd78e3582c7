"""Training recipes of the ablation: ``paper``, ``quick``, ``smoke`` (``configs/recipes/*.yaml``) or
any YAML file with the same keys. Unknown keys and bad values are errors naming the key."""

from __future__ import annotations

import math
import os
import re
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import yaml

from analysis.ablation.coco_data import Augment
from analysis.ablation.precision import CPU_PRECISIONS
from analysis.ablation.synth import DEFAULT_SCENE, Scene
from analysis.ablation.threads import available_cores
from analysis.settings import RECIPE_DIR
from hrnet_core.config import ConfigError
from hrnet_core.errors import UserInputError
from hrnet_core.networks.views import resized
from hrnet_core.safe_yaml import read_yaml_file

BUILTIN_RECIPES = ("cpu", "quick", "paper", "smoke")
MODEL_OVERRIDES = ("width", "blocks", "stem", "stage1_blocks", "stage1_planes")
LR_SCHEDULES = ("step", "cosine")
INITS = ("official", "pytorch")


class RecipeError(UserInputError):
    """A recipe that cannot be used; the message names the file and key."""


@dataclass(frozen=True)
class BuiltinData:
    """Size of the built-in dataset (generated once per setting, cached)."""

    seed: int = 0
    train: int = 4000
    val: int = 500
    image_size: tuple[int, int] = (256, 256)  # H, W
    scene: Scene = DEFAULT_SCENE  # figures, clutter, occluders, rotations (``analysis.ablation.synth.Scene``)


@dataclass(frozen=True)
class Recipe:
    """Everything a training run needs besides the model and the data folder."""

    name: str
    description: str = ""
    data: str = "builtin"  # builtin | coco (coco needs --data PATH)
    builtin: BuiltinData = field(default_factory=BuiltinData)
    input_size: tuple[int, int] | None = None  # H, W; None = the base config's
    sigma: float = 2.0
    epochs: int = 30
    batch_size: int = 32  # per process (per GPU)
    lr: float = 1e-3
    weight_decay: float = 0.0
    lr_steps: tuple[int, ...] = ()
    lr_factor: float = 0.1
    lr_schedule: str = "step"  # step (MultiStep at lr_steps, official) | cosine (per step, after warm-up)
    warmup_epochs: float = 0.0  # linear warm-up from 0, per step
    augment: Augment = field(default_factory=Augment)
    eval_every: int = 1
    flip_test: bool = False
    eval_batch_size: int = 64
    train_limit: int | None = None  # train on the persons of the first N train images only
    val_limit: int | None = None  # evaluate on the first N val images only
    workers: int | None = None  # None = auto
    cpu_threads: int | None = None  # torch threads when training on CPU; None = torch's default
    seeds: int = 1  # seeds per variant (0..N-1) when ``ablate`` is given no --seeds
    parallel_jobs: int = 1  # on CPU: jobs (variant x seed) trained at once, each in its own process
    cpu_precision: str = "auto"  # auto (measured) | fp32 | bf16 (autocast + channels_last) on CPU
    init: str = "official"  # official (convs N(0, 0.001)) | pytorch (PyTorch's defaults, head N(0, 0.001))
    bf16: bool = True  # autocast on CUDA
    channels_last: bool = True  # on CUDA
    model: dict = field(default_factory=dict)  # overrides: width, blocks, stem, stage1_blocks, stage1_planes
    cluster: dict = field(default_factory=dict)  # SLURM options for --executor slurm (CLUSTER_KEYS)

    def lr_at(self, epoch: int, frac: float = 0.0) -> float:
        """Learning rate at ``frac`` (0..1) of 1-based ``epoch``.

        ``step``: MultiStep, dropped by ``lr_factor`` after each of ``lr_steps`` (official: 1e-3 for
        epochs 1..170, 1e-4 for 171..200, 1e-5 for 201..210). ``cosine``: half a cosine from ``lr`` to 0
        over the epochs after the warm-up. Either way a linear warm-up over the first ``warmup_epochs``."""
        t = (epoch - 1) + frac
        if self.lr_schedule == "cosine":
            span = max(1e-9, self.epochs - self.warmup_epochs)
            lr = self.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, max(0.0, t - self.warmup_epochs) / span)))
        else:
            lr = self.lr * self.lr_factor ** sum(1 for s in self.lr_steps if s < epoch)
        if self.warmup_epochs > 0 and t < self.warmup_epochs:
            lr *= (t + 1e-3) / self.warmup_epochs
        return lr

    def resolve_workers(self, device=None, threads: int | None = None) -> int:
        """DataLoader workers per training process: the recipe's, or on a CPU one (decoding and warping
        a 128x128 crop costs about 1-2 ms, a small fraction of a CPU training step: one worker keeps up,
        see ``bench/train_throughput.py``) unless the job's ``threads`` take every core: then loading
        in the training process is faster than a worker process contending with the spinning OpenMP
        threads (the ``cpu`` recipe's 8-fusion job on 2 cores with 2 threads: 170 img/s without a
        worker, 147 with one; ``bench/job_threads.py``); on a GPU all cores but two (at most 10)."""
        if self.workers is not None:
            return self.workers
        if device is not None and getattr(device, "type", device) == "cpu":
            cores = available_cores()
            return 1 if cores > 1 and (threads or 1) < cores else 0
        return max(0, min(10, (os.cpu_count() or 1) - 2))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["builtin"]["image_size"] = list(self.builtin.image_size)
        d["builtin"]["scene"]["figures"] = list(self.builtin.scene.figures)
        d["input_size"] = list(self.input_size) if self.input_size else None
        d["lr_steps"] = list(self.lr_steps)
        return d


def _check(cond: bool, where: str, msg: str) -> None:
    if not cond:
        raise RecipeError(f"{where}: {msg}")


def _pos_int(v, where: str, allow_zero: bool = False) -> int:
    ok = isinstance(v, int) and not isinstance(v, bool) and (v >= 0 if allow_zero else v > 0)
    _check(ok, where, f"must be a {'non-negative' if allow_zero else 'positive'} integer, got {v!r}")
    return v


def _number(v, where: str, positive: bool = True) -> float:
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and (v > 0 if positive else v >= 0)
    _check(ok, where, f"must be a {'positive' if positive else 'non-negative'} number, got {v!r}")
    return float(v)


def _bool(v, where: str) -> bool:
    _check(isinstance(v, bool), where, f"must be true or false, got {v!r}")
    return v


def _hw(v, where: str) -> tuple[int, int]:
    _check(isinstance(v, (list, tuple)) and len(v) == 2, where, f"must be [H, W], got {v!r}")
    return (_pos_int(v[0], f"{where}[0]"), _pos_int(v[1], f"{where}[1]"))


def _keys(d, allowed, where: str) -> dict:
    _check(isinstance(d, dict), where, f"must be a mapping, got {type(d).__name__}")
    unknown = sorted(set(d) - set(allowed))
    if unknown:
        key = f"{where}.{unknown[0]}" if ": " in where else f"{where}: {unknown[0]}"
        raise RecipeError(f"{key}: unknown key; allowed: {', '.join(sorted(allowed))}")
    return d


def _fraction(v, where: str) -> float:
    x = _number(v, where, positive=False)
    _check(x <= 1, where, f"must lie in [0, 1], got {v!r}")
    return x


def _scene(d, where: str) -> Scene:
    d = _keys(d, {f.name for f in fields(Scene)}, where)
    kw = {}
    if "figures" in d:
        p = d["figures"]
        _check(isinstance(p, (list, tuple)) and len(p) == 3, f"{where}.figures",
               f"must list the chances of 1, 2 and 3 figures, got {p!r}")
        kw["figures"] = tuple(_fraction(x, f"{where}.figures[{i}]") for i, x in enumerate(p))
        _check(sum(kw["figures"]) > 0, f"{where}.figures", "must not be all zero")
    for key in ("clutter_min", "clutter_max"):
        if key in d:
            kw[key] = _pos_int(d[key], f"{where}.{key}", allow_zero=True)
    for key in ("occluder_prob", "free_rotation"):
        if key in d:
            kw[key] = _fraction(d[key], f"{where}.{key}")
    scene = replace(DEFAULT_SCENE, **kw)
    _check(scene.clutter_min <= scene.clutter_max, f"{where}.clutter_min", "must not exceed clutter_max")
    return scene


# SLURM options of a recipe's ``cluster:`` section and of ``ablate --slurm KEY=VALUE``: key -> kind.
CLUSTER_KEYS = {"partition": "name", "account": "name", "qos": "name", "constraint": "name",
                "time": "minutes", "cpus_per_task": "count", "gpus_per_task": "count", "mem": "memory",
                "array_parallelism": "count"}
_CLUSTER_NAME_RE = re.compile(r"^[A-Za-z0-9_.,:+@=-]{1,120}$")
_CLUSTER_MEM_RE = re.compile(r"^[0-9]{1,9}[KMGT]?$", re.I)


def parse_cluster(d, where: str) -> dict:
    """The SLURM options of ``d`` checked: ``partition``, ``account``, ``qos``, ``constraint`` (names),
    ``time`` (minutes), ``cpus_per_task``, ``gpus_per_task``, ``array_parallelism`` (positive counts),
    ``mem`` (sbatch's ``--mem``: a number with an optional K/M/G/T suffix, e.g. ``16G``). Keys may be
    written with ``-`` for ``_``. Raises ``RecipeError`` naming ``where`` and the key (unknown keys too)."""
    if d is None:
        return {}
    _check(isinstance(d, dict), where, f"must be a mapping, got {type(d).__name__}")
    d = {str(k).replace("-", "_"): v for k, v in d.items()}
    _keys(d, CLUSTER_KEYS, where)
    sep = "." if ": " in where else " "
    out: dict = {}
    for key, value in d.items():
        at = f"{where}{sep}{key}"
        kind = CLUSTER_KEYS[key]
        if kind in ("minutes", "count"):
            if isinstance(value, str) and value.strip().isdigit():
                value = int(value.strip())
            out[key] = _pos_int(value, at)
        elif kind == "memory":
            text = str(value).strip()
            _check(not isinstance(value, bool) and bool(_CLUSTER_MEM_RE.match(text)), at,
                   f"must be a size such as 16G, got {value!r}")
            out[key] = text.upper()
        else:
            _check(isinstance(value, str) and bool(_CLUSTER_NAME_RE.match(value)), at,
                   f"must be a name (letters, digits, _ . , : + @ = -), got {value!r}")
            out[key] = value
    return out


def parse_recipe(data: dict, source: str = "<recipe>") -> Recipe:
    """A ``Recipe`` from a mapping; ``RecipeError`` names ``source`` and the key."""
    names = {f.name for f in fields(Recipe)}
    d = _keys(data, names, source)
    kw: dict = {"name": str(d.get("name", Path(source).stem))}
    w = source
    if "description" in d:
        kw["description"] = str(d["description"])
    if "data" in d:
        _check(d["data"] in ("builtin", "coco"), f"{w}: data", f"must be builtin or coco, got {d['data']!r}")
        kw["data"] = d["data"]
    if "builtin" in d:
        b = _keys(d["builtin"], {f.name for f in fields(BuiltinData)}, f"{w}: builtin")
        kw["builtin"] = BuiltinData(
            seed=_pos_int(b.get("seed", 0), f"{w}: builtin.seed", allow_zero=True),
            train=_pos_int(b.get("train", 4000), f"{w}: builtin.train"),
            val=_pos_int(b.get("val", 500), f"{w}: builtin.val"),
            image_size=_hw(b.get("image_size", [256, 256]), f"{w}: builtin.image_size"),
            scene=_scene(b.get("scene") or {}, f"{w}: builtin.scene"),
        )
    if d.get("input_size") is not None:
        kw["input_size"] = _hw(d["input_size"], f"{w}: input_size")
    for key, allowed in (("lr_schedule", LR_SCHEDULES), ("cpu_precision", CPU_PRECISIONS), ("init", INITS)):
        if key in d:
            _check(d[key] in allowed, f"{w}: {key}", f"must be one of {', '.join(allowed)}, got {d[key]!r}")
            kw[key] = d[key]
    if "warmup_epochs" in d:
        kw["warmup_epochs"] = _number(d["warmup_epochs"], f"{w}: warmup_epochs", positive=False)
    for key in ("sigma", "lr", "lr_factor"):
        if key in d:
            kw[key] = _number(d[key], f"{w}: {key}")
    if "weight_decay" in d:
        kw["weight_decay"] = _number(d["weight_decay"], f"{w}: weight_decay", positive=False)
    for key in ("epochs", "batch_size", "eval_every", "eval_batch_size", "parallel_jobs", "seeds"):
        if key in d:
            kw[key] = _pos_int(d[key], f"{w}: {key}")
    for key in ("train_limit", "val_limit", "workers", "cpu_threads"):
        if d.get(key) is not None and d.get(key) != "auto":
            kw[key] = _pos_int(d[key], f"{w}: {key}", allow_zero=key == "workers")
    for key in ("flip_test", "bf16", "channels_last"):
        if key in d:
            kw[key] = _bool(d[key], f"{w}: {key}")
    if "lr_steps" in d:
        steps = d["lr_steps"] or []
        _check(isinstance(steps, list), f"{w}: lr_steps", "must be a list of epochs")
        kw["lr_steps"] = tuple(_pos_int(s, f"{w}: lr_steps[{i}]") for i, s in enumerate(steps))
        _check(list(kw["lr_steps"]) == sorted(kw["lr_steps"]), f"{w}: lr_steps", "must be increasing")
    if "augment" in d:
        a = _keys(d["augment"] or {}, {f.name for f in fields(Augment)}, f"{w}: augment")
        aug = Augment()
        for f in fields(Augment):
            if f.name in a:
                v = a[f.name]
                if f.name == "flip":
                    v = _bool(v, f"{w}: augment.flip")
                elif f.name == "half_body_joints":
                    v = _pos_int(v, f"{w}: augment.half_body_joints", allow_zero=True)
                else:
                    v = _number(v, f"{w}: augment.{f.name}", positive=False)
                aug = replace(aug, **{f.name: v})
        kw["augment"] = aug
    if d.get("model"):
        m = _keys(d["model"], MODEL_OVERRIDES, f"{w}: model")
        kw["model"] = {k: _pos_int(v, f"{w}: model.{k}") for k, v in m.items()}
    if d.get("cluster"):
        kw["cluster"] = parse_cluster(d["cluster"], f"{w}: cluster")
    recipe = Recipe(**kw)
    _check(all(s <= recipe.epochs for s in recipe.lr_steps), f"{w}: lr_steps", f"must lie within the {recipe.epochs} epochs")
    _check(recipe.warmup_epochs < recipe.epochs, f"{w}: warmup_epochs", f"must be below the {recipe.epochs} epochs")
    return recipe


def default_recipe() -> str:
    """``quick`` where a CUDA GPU is present, ``cpu`` elsewhere (``quick`` needs hours on a CPU); the
    default of ``ablate`` and of the Ablation page."""
    import torch

    return "quick" if torch.cuda.is_available() else "cpu"


def load_recipe(name_or_path: str | Path) -> Recipe:
    """A built-in recipe by name (``quick``, ``paper``, ``smoke``) or a YAML file."""
    s = str(name_or_path)
    path = RECIPE_DIR / f"{s}.yaml" if s in BUILTIN_RECIPES else Path(s)
    if not path.is_file():
        raise RecipeError(f"{s}: no such recipe (a YAML file, or one of {', '.join(BUILTIN_RECIPES)})")
    try:
        data = read_yaml_file(path, "recipe")
    except ConfigError as err:  # bounded YAML: names the file (and the field), one line
        raise RecipeError(str(err)) from None
    return parse_recipe(data or {}, str(path) if s not in BUILTIN_RECIPES else s)


def recipe_from_dict(d: dict) -> Recipe:
    """Inverse of ``Recipe.to_dict`` (for ``ablation.json`` on resume)."""
    return parse_recipe(d, d.get("name", "<stored recipe>"))


def apply_model_overrides(cfg, overrides: dict):
    """``cfg`` (an ``HRNetConfig`` or ``NetworkConfig``) with the recipe's size overrides (smoke: a tiny model),
    mapped onto its network's section by ``NetworkSpec.resize``; modules and fusion are kept."""
    if not overrides:
        return cfg
    return replace(resized(cfg, overrides), name=f"{cfg.name}_resized")


def dump_recipe(recipe: Recipe) -> str:
    return yaml.safe_dump(recipe.to_dict(), sort_keys=False, default_flow_style=None)
