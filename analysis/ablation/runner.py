"""The ablation runner: variants x seeds, run folders, resume, failure isolation.

Layout::

    runs/<name>/ablation.json            the request (base config, variants, recipe, data, seeds, device)
    runs/<name>/status.json              the run: state, pid, host, jobs done / failed, report
    runs/<name>/<variant>/seed<k>/       one job: config.yaml, model.yaml, env.json, metrics.jsonl,
                                         status.json, last.pth (and error.txt when it failed)
    runs/<name>/.hrnet-explorer-run      the marker: a run folder of this tool (``--out`` rule:
                                         ``run_folder.check_run_folder_use``); runs/<name>/.lock

A run folder is read back as user input (``analysis.ablation.run_folder``): on ``--resume`` every field
of ``ablation.json``, every job's ``metrics.jsonl`` and the places the run writes are checked before
anything is written; a problem is one line (exit 2).

Every variant shares the recipe, the data (and its order and augmentation, drawn from the seed) and
the seeds; only the fusion schedule differs. A failing job (any exception, CUDA out of memory) is
recorded in its ``status.json`` and the next one starts. With ``resume`` finished jobs are skipped and
the others continue from their last complete epoch.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import platform
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
import yaml

import hrnet_core as hc
from analysis.ablation.coco_data import (
    SPLITS,
    DatasetError,
    KeypointData,
    KeypointDataset,
    coco_paths,
    load_keypoint_data,
)
from analysis.ablation.executors import (
    ExecutorSpec,
    error_line,
    make_executor,
    mark_job,
)
from analysis.ablation.files import LOCK_NAME, read_json, write_json_atomic
from analysis.ablation.precision import Precision, choose_precision
from analysis.ablation.progress import RUN_CONFIG_NAME
from analysis.ablation.recipes import Recipe, apply_model_overrides, recipe_from_dict
from analysis.ablation.run_folder import (
    check_run_paths,
    claimed_run_folder,
    read_job_status,
    read_metrics,
    read_request,
    stored_precision,
)
from analysis.ablation.step import cpu_training_state
from analysis.ablation.synth import builtin_dataset
from analysis.ablation.threads import job_threads, threads_line
from analysis.ablation.train import DistContext, Job, init_by_name, make_context, probe_batch
from analysis.ablation.variants import VariantError, bits_schedule, check_variant_name, stage_modules
from analysis.settings import PROJECT_ROOT
from hrnet_core.concise_yaml import to_concise_dict
from hrnet_core.config import FUSION_PRESETS, fusion_preset
from hrnet_core.device import device_label
from hrnet_core.errors import UserInputError, quote
from hrnet_core.safe_yaml import read_yaml_file

PRESET_ORDER = ("final_only", "across_stage", "all", "none")


# ---- variants ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Variant:
    """A named fusion schedule: one tuple of per-module flags per stage."""

    name: str
    schedule: tuple[tuple[bool, ...], ...]

    @property
    def fusions(self) -> int:
        return sum(sum(s) for s in self.schedule)

    @property
    def bits(self) -> str:
        return "/".join("".join("1" if f else "0" for f in s) for s in self.schedule)

    def to_dict(self) -> dict:
        return {"name": self.name, "fusions": self.fusions, "schedule": self.bits}


def _preset_counts(base: hc.HRNetConfig) -> dict[str, int]:
    return {p: sum(sum(s) for s in fusion_preset(stage_modules(base), p)) for p in PRESET_ORDER}


def _one_variant(token, base: hc.HRNetConfig, where: str, name: str | None = None, as_bits: bool = False) -> Variant:
    """One variant from a fusion count, a preset name, a 0/1 schedule string or a list of flags.

    A string of one or two digits is a count (``8``), longer ones a flat schedule (``11001001``);
    ``as_bits`` (``--schedule``) always reads a schedule."""
    mods = stage_modules(base)
    if isinstance(token, str) and not as_bits:
        t = token.strip()
        if t in FUSION_PRESETS:
            return Variant(name or t, fusion_preset(mods, t))
        if t.isdigit() and len(t) <= 2:
            token = int(t)
    if isinstance(token, int) and not isinstance(token, bool):
        counts = _preset_counts(base)
        for p in PRESET_ORDER:
            if counts[p] == token:
                return Variant(name or p, fusion_preset(mods, p))
        avail = ", ".join(f"{p} {c}" for p, c in counts.items())
        raise VariantError(f"{where}: no preset gives {token} fusions for modules {list(mods)} ({avail}); "
                           "give a schedule of 0/1 flags instead")
    if isinstance(token, str):
        sched = bits_schedule(token, base, where)
        return Variant(name or "custom_" + "-".join("".join("1" if f else "0" for f in st) for st in sched), sched)
    if isinstance(token, list) and token:
        if all(isinstance(r, list) for r in token):
            if len(token) != len(mods) or any(len(r) != m for r, m in zip(token, mods)):
                raise VariantError(f"{where}: needs one list per stage with {list(mods)} flags")
            sched = tuple(tuple(bool(f) for f in r) for r in token)
        else:
            sched = bits_schedule(",".join(str(int(bool(f))) for f in token), base, where)
        return Variant(name or "custom", sched)
    raise VariantError(f"{where}: {token!r} is not a variant (a fusion count, a preset or a 0/1 schedule)")


def parse_variants(spec: str, base: hc.HRNetConfig, schedules: list[str] | tuple[str, ...] = ()) -> list[Variant]:
    """Variants from ``--variants`` and ``--schedule``.

    ``spec``: comma-separated fusion counts (``1,3,8``: the presets giving that many fusions for the
    base's modules), preset names (``final_only,across_stage,all,none``), per-stage 0/1 schedules
    (``1/0001/001``), or a YAML file mapping names to any of these (or to lists of flags).
    ``schedules``: extra custom variants ``NAME=FLAGS`` with flat flags (``mine=1,1,0,0,1,0,0,1``).
    """
    variants: list[Variant] = []
    spec = (spec or "").strip()
    if spec.endswith((".yaml", ".yml")) or (spec and Path(spec).is_file()):
        path = Path(spec)
        if not path.is_file():
            raise VariantError(f"{spec}: no such variants file")
        try:
            data = read_yaml_file(path, "variants")
        except (OSError, yaml.YAMLError) as err:
            raise VariantError(f"{spec}: cannot read variants YAML ({err.__class__.__name__})") from None
        if not isinstance(data, dict) or not data:
            raise VariantError(f"{spec}: must map variant names to fusion counts, presets or schedules")
        for k, v in data.items():
            variants.append(_one_variant(v, base, f"{spec}: {k}", name=str(k)))
    elif spec:
        for tok in spec.split(","):
            tok = tok.strip()
            if tok:
                variants.append(_one_variant(tok, base, f"--variants {tok}"))
    for s in schedules:
        name, _, bits = s.partition("=")
        if not bits:
            name, bits = "", name
        variants.append(_one_variant(bits, base, f"--schedule {s}", name=name.strip() or None, as_bits=True))
    if not variants:
        raise VariantError("--variants: no variants given")
    seen: dict[str, Variant] = {}
    for v in variants:
        if v.name in seen:
            raise VariantError(f"variant {quote(v.name)} is given twice")
        check_variant_name(v.name, "--variants")  # it names the job folder: never '..' or a run file
        seen[v.name] = v
    return variants


# ---- the request ---------------------------------------------------------------------------
@dataclass
class AblationRequest:
    """What to run. ``base`` already carries the recipe's input size and model overrides."""

    out: Path
    base: hc.HRNetConfig
    variants: list[Variant]
    recipe: Recipe
    data: str  # "builtin" or a COCO folder
    seeds: list[int]
    device: str = "auto"
    base_source: str = ""
    smoke: bool = False
    command: list[str] = field(default_factory=list)
    cpu_threads: int | None = None  # --cpu-threads (not stored: a resume may choose anew); None = the recipe's

    @property
    def name(self) -> str:
        return self.out.name

    def to_dict(self, data_info: dict | None = None, device_text: str = "", world: int = 1) -> dict:
        return {
            "name": self.name,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": self.command,
            "base_source": self.base_source,
            "base": to_concise_dict(self.base),
            "variants": [v.to_dict() for v in self.variants],
            "recipe": self.recipe.to_dict(),
            "data": data_info or {"kind": "builtin" if self.data == "builtin" else "coco", "path": self.data},
            "data_arg": self.data,
            "seeds": list(self.seeds),
            "device": self.device,
            "device_label": device_text,
            "world_size": world,
            "smoke": self.smoke,
        }


def resolve_base(base: hc.HRNetConfig, recipe: Recipe) -> hc.HRNetConfig:
    """The base config with the recipe's model overrides and input size applied, named after what it now is
    (``sized_name``: the W32 256x192 pose config at the cpu recipe's size is ``pose_hrnet_w16_128x96``)."""
    cfg = apply_model_overrides(base, recipe.model)
    if recipe.input_size:
        cfg = cfg.with_input(recipe.input_size)
    if cfg != base:
        cfg = replace(cfg, name=sized_name(base.name, cfg))
    return hc.load_config(to_concise_dict(cfg))  # re-validated (input multiple of 32 etc.)


_WIDTH_RE = re.compile(r"(?<![a-z0-9])w\d+(?![0-9])", re.I)
_SIZE_RE = re.compile(r"(?<![0-9])\d+x\d+(?![0-9])")


def sized_name(name: str, cfg) -> str:
    """``name`` (a config's) with its width tag (``w32``) and input size (``256x192``) replaced by ``cfg``'s, and
    a ``_resized`` suffix dropped; the tags are appended where ``name`` has none. Width: the first branch's
    channels of a classic HRNet (another network keeps its name's width and gets a ``_resized`` mark)."""
    name = re.sub(r"_resized$", "", name)
    h, w = cfg.input_hw
    size = f"{h}x{w}"
    name = _SIZE_RE.sub(size, name) if _SIZE_RE.search(name) else f"{name}_{size}"
    if isinstance(cfg, hc.HRNetConfig) and cfg.stages:
        width = f"w{cfg.stages[0].channels[0]}"
        name = _WIDTH_RE.sub(width, name, count=1) if _WIDTH_RE.search(name) else f"{name}_{width}"
    elif not isinstance(cfg, hc.HRNetConfig):
        name = f"{name}_resized"
    return name


def load_request(out: str | Path, device: str | None = None) -> AblationRequest:
    """The stored request of ``out`` (for ``--resume``), every field checked as on the command line
    (``run_folder.read_request``: variant names, schedules, seeds, recipe, base config, device).
    Raises ``UserInputError``: no ``ablation.json``, or one line naming its bad field."""
    out = Path(out)
    d = read_request(out, require_base=True)
    if d is None:
        raise UserInputError(f"{out}: nothing to resume (no ablation.json)")
    base = hc.load_config(d["base"])
    where = f"{out / 'ablation.json'}: variants"
    variants = [Variant(v["name"], bits_schedule(v["schedule"], base, f"{where}[{i}].schedule"))
                for i, v in enumerate(d["variants"])]
    return AblationRequest(out, base, variants, recipe_from_dict(d["recipe"]), d.get("data_arg", "builtin"),
                           list(d["seeds"]), device or d.get("device", "auto"), d.get("base_source", ""),
                           bool(d.get("smoke")), list(d.get("command", [])))


def check_run_out(req: AblationRequest, resume: bool) -> None:
    """What every way of starting a run checks before it writes anything: ``req.out`` a folder (or absent), not
    holding an ablation unless ``resume``, and the data argument. Raises ``UserInputError`` (one line)."""
    out = req.out
    if out.exists() and not out.is_dir():
        raise UserInputError(f"{out}: exists and is not a folder; choose another --out")
    if (out / "ablation.json").is_file() and not resume:
        raise UserInputError(f"{out}: already holds an ablation; continue it with --resume or choose another --out")
    check_data_arg(req.data)


def check_data_arg(data: str) -> None:
    """Fail early (before any folder is written) on a COCO path that lacks a split."""
    if data != "builtin":
        for split in SPLITS:
            coco_paths(data, split)


def prepare_data(req: AblationRequest, ctx: DistContext, log=print) -> KeypointData:
    if req.data == "builtin":
        b = req.recipe.builtin
        root = None
        if ctx.main:
            root = builtin_dataset(b.seed, b.train, b.val, b.image_size, log=log, scene=b.scene)
        ctx.barrier()
        if root is None:
            root = builtin_dataset(b.seed, b.train, b.val, b.image_size, scene=b.scene)
        kind = "builtin"
    else:
        root, kind = Path(req.data), "coco"
    return load_keypoint_data(root, kind, req.base.input_hw, req.recipe.val_limit, req.recipe.train_limit)


# ---- environment ---------------------------------------------------------------------------
def git_commit() -> dict:
    def git(*args):
        try:
            r = subprocess.run(["git", "-C", str(PROJECT_ROOT), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return r.stdout.strip() if r.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(dirty) if dirty is not None else None}


def environment(ctx: DistContext) -> dict:
    cuda = torch.cuda.is_available()
    return {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "gpu": torch.cuda.get_device_name(ctx.device) if ctx.device.type == "cuda" else None,
        "gpu_count": torch.cuda.device_count() if cuda else 0,
        "gpu_memory_mib": (torch.cuda.get_device_properties(ctx.device).total_memory / 2**20
                           if ctx.device.type == "cuda" else None),
        "device": device_label(ctx.device),
        "world_size": ctx.world,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "git": git_commit(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def job_folder(out: Path, variant: str, seed: int) -> Path:
    return out / variant / f"seed{seed}"


def job_done(folder: Path, epochs: int) -> bool:
    """Whether the job in ``folder`` finished: its status says done and its metrics reach ``epochs``.
    Raises ``RunFolderError`` for a metrics file that cannot be trusted (``read_metrics``)."""
    if read_job_status(folder)[0].get("state") != "done":
        return False
    rows = read_metrics(folder)
    return bool(rows) and rows[-1]["epoch"] >= epochs


def check_jobs(req: AblationRequest, log=print) -> None:
    """Before a run writes anything into ``req.out``: no file it writes is a link, a folder or a device
    (``check_run_paths``), every job's ``metrics.jsonl`` can be trusted (``read_metrics``), and a job
    whose ``status.json`` is damaged is said to be trained again. Raises ``RunFolderError``."""
    check_run_paths(req.out, [v.name for v in req.variants], req.seeds)
    for v in req.variants:
        for s in req.seeds:
            folder = job_folder(req.out, v.name, s)
            read_metrics(folder)
            _fields, problem = read_job_status(folder)
            if problem:
                log(f"  warning: {problem}; the job is trained again where it is not complete")


# ---- the run -------------------------------------------------------------------------------


class RunLockedError(UserInputError):
    """The run folder is in use by another ``ablate`` process."""


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _holder(fd: int) -> str:
    with contextlib.suppress(OSError, ValueError):
        return os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
    return ""


def lock_holder(out: Path) -> str | None:
    """``"pid N on HOST"`` when a run holds ``out/.lock`` now, else ``None`` (a free or absent lock).
    Taking the lock to test it drops it again at once."""
    path = Path(out) / LOCK_NAME
    if not path.is_file():
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        if _try_lock(fd):
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        return _holder(fd) or "another process"
    finally:
        os.close(fd)


def locked_error(out: Path, holder: str) -> RunLockedError:
    """The one-line refusal of a run folder ``out`` that ``holder`` ("pid N on HOST") is writing."""
    return RunLockedError(f"{out}: in use by another ablation ({holder}); wait for it to finish or stop it, "
                          "then --resume")


@contextlib.contextmanager
def run_lock(out: Path):
    """Hold ``out/.lock`` (an exclusive ``flock``) for the block; a second writer is refused at once
    with one line. The kernel drops the lock with its process, so a killed run leaves no stale lock."""
    out.mkdir(parents=True, exist_ok=True)
    # O_NOFOLLOW: a .lock that is a link is refused, never truncated where it points.
    try:
        fd = os.open(out / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as err:
        raise RunLockedError(f"{out / LOCK_NAME}: cannot be opened ({err.strerror or err.__class__.__name__})") from None
    try:
        if not _try_lock(fd):
            raise locked_error(out, _holder(fd) or "another process")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode(), 0)
        yield
    finally:
        os.close(fd)


def run_precision(req: AblationRequest, ctx: DistContext, data: KeypointData, threads: int | None = None) -> Precision:
    """One precision for every job of the run (so that variants compare like with like): stored in
    ``ablation.json`` on the first start and reused on ``--resume``; on a CPU with bf16 instructions
    measured on the first variant's model with the jobs' thread count ``threads``."""
    stored = stored_precision(req.out)  # checked: amp, channels_last, device
    if stored and stored.get("device") == ctx.device.type:
        return Precision.from_dict(stored)
    recipe = req.recipe
    if ctx.device.type != "cpu" or recipe.cpu_precision != "auto":
        return choose_precision(ctx.device, recipe)
    with cpu_training_state(threads):  # the jobs' threads, given back after
        cfg = req.base.with_fusion(req.variants[-1].schedule)
        model = init_by_name(hc.build_model(cfg, init="default"), 0, recipe.init)
        ds = KeypointDataset(data.train_records, cfg.input_hw, recipe.sigma, train=True, augment=recipe.augment)
        return choose_precision(ctx.device, recipe, model, probe_batch(ds, recipe.batch_size, ctx.device))


def requested_threads(req: AblationRequest) -> int | None:
    """The thread count asked for: ``--cpu-threads``, else the recipe's ``cpu_threads``; ``None``: shared out."""
    return req.cpu_threads or req.recipe.cpu_threads


def run_threads(req: AblationRequest, ctx: DistContext, jobs_at_once: int) -> int | None:
    """Torch threads per job on a CPU (``threads.job_threads``: all cores for one job, shared out among
    the jobs or torchrun ranks of this machine); ``None`` on CUDA (torch's default)."""
    if ctx.device.type != "cpu":
        return None
    here = int(os.environ.get("LOCAL_WORLD_SIZE", ctx.world)) if ctx.world > 1 else jobs_at_once
    return job_threads(requested_threads(req), here)


def parallel_jobs(req: AblationRequest, ctx: DistContext) -> int:
    """Jobs trained at once: the recipe's ``parallel_jobs`` on a CPU without torchrun, else 1."""
    if ctx.device.type != "cpu" or ctx.world > 1:
        return 1
    return max(1, min(req.recipe.parallel_jobs, len(req.variants) * len(req.seeds)))


def run_ablation(req: AblationRequest, resume: bool = False, log=print,
                 on_epoch_end: Callable[[Job, int], None] | None = None,
                 executor: ExecutorSpec | None = None) -> dict:
    """Run every variant and seed of ``req`` into ``req.out``; write the report. Returns the run status.

    Raises ``UserInputError`` for a bad request, a folder that is not a run of this tool
    (``run_folder.check_run_folder_use``: only a new or empty folder, or one this tool made), a run folder
    whose files cannot be trusted (``check_jobs``) or a folder in use by another run, all before anything
    is written; a run refused later (bad data) leaves no folder or file of its own behind. Lets
    ``BaseException`` (a kill, Ctrl-C) through after marking the current jobs stopped (``executors.record_stop``:
    "failed" for anything but a ``KeyboardInterrupt``), and records any other
    exception in the job's ``status.json``. With the recipe's ``parallel_jobs`` > 1 on a CPU, that many
    jobs train at once, each in its own process; each job gets ``req.cpu_threads`` torch threads (or the
    recipe's ``cpu_threads``), by default the cores shared out among the jobs at once (``run_threads``).

    ``executor`` (``analysis.ablation.executors``; default ``local``) runs the jobs: ``local`` (this
    process, or the pool above), ``submitit-local`` (one submitit process per job) or ``slurm`` (one
    array job); the run's first log line names it. ``on_epoch_end`` needs ``local``.
    """
    executor = executor or ExecutorSpec()  # submitit ones: analysis.ablation.slurm.executor_spec
    out = req.out
    check_run_out(req, resume)
    ctx = make_context(req.device)
    if not ctx.main:  # rank 0 checks and writes the folder; the others only train
        return _run_locked(req, ctx, log, on_epoch_end, executor)
    holder = lock_holder(out)
    if holder:  # said first: a folder another ablation is writing is a run folder, just a busy one
        raise locked_error(out, holder)
    with claimed_run_folder(out):
        check_jobs(req, log)
        with run_lock(out):
            return _run_locked(req, ctx, log, on_epoch_end, executor)


def _run_locked(req: AblationRequest, ctx: DistContext, log, on_epoch_end, spec: ExecutorSpec) -> dict:
    out = req.out
    spec = replace(spec, cluster={**req.recipe.cluster, **spec.cluster})  # --slurm over the recipe's cluster:
    n_jobs = len(req.variants) * len(req.seeds)
    n_parallel = parallel_jobs(req, ctx)
    runner = make_executor(spec, out, None, ctx, n_parallel, n_jobs, on_epoch_end, log)  # refused before any work
    threads = run_threads(req, ctx, n_parallel)
    if ctx.main:
        where = "" if threads is None or spec.name == "slurm" else \
            f"; {threads_line(threads, n_parallel, requested_threads(req))}"
        log(f"ablation {req.name}: jobs run on executor {runner.describe()}{where}")
    data = prepare_data(req, ctx, log)
    env = environment(ctx)
    precision = ctx.broadcast(run_precision(req, ctx, data, threads) if ctx.main else None)
    env["precision"] = precision.to_dict()
    run_status_path = out / "status.json"
    jobs = [(v, s) for s in req.seeds for v in req.variants]
    if ctx.main:
        if not (out / "ablation.json").is_file():
            write_json_atomic(out / "ablation.json", {**req.to_dict(data.describe(), env["device"], ctx.world),
                                                      "precision": precision.to_dict()})
        write_json_atomic(run_status_path, {"state": "running", "pid": os.getpid(), "host": env["host"],
                                            "started_at": time.time(), "jobs": len(jobs), "done": 0, "failed": 0,
                                            "parallel_jobs": n_parallel})
        for v, s in jobs:
            folder = job_folder(out, v.name, s)
            folder.mkdir(parents=True, exist_ok=True)
            if not job_done(folder, req.recipe.epochs):
                mark_job(folder, state="queued", variant=v.name, seed=s, fusions=v.fusions, epochs=req.recipe.epochs,
                      error=None, epoch=read_job_status(folder)[0].get("epoch", 0))
        log(f"ablation {req.name}: {len(req.variants)} variants x {len(req.seeds)} seeds on {env['device']}"
            f" (world {ctx.world}, {n_parallel} job(s) at a time); data {data.kind} {data.root} "
            f"({len(data.train_records)} train / {len(data.val_records)} val persons); recipe {req.recipe.name}; "
            f"precision {precision.label} ({precision.reason})")

    todo = []
    done = failed = 0
    for v, s in jobs:
        folder = job_folder(out, v.name, s)
        if ctx.broadcast(job_done(folder, req.recipe.epochs) if ctx.main else None):  # rank 0 decides
            done += 1
            continue
        # a SLURM task's cores are its allocation's, not this machine's: only an explicit count travels
        job = build_job(req, v, s, precision, requested_threads(req) if spec.name == "slurm" else threads)
        cfg = job.cfg
        if ctx.main:
            model_yaml = hc.dump_config(cfg)
            (folder / RUN_CONFIG_NAME).write_text(model_yaml)
            (folder / "config.yaml").write_text(yaml.safe_dump({
                "variant": v.name, "fusions": v.fusions, "schedule": v.bits, "seed": s,
                "model": yaml.safe_load(model_yaml), "recipe": req.recipe.to_dict(), "data": data.describe(),
            }, sort_keys=False, default_flow_style=None))
            write_json_atomic(folder / "env.json", env)
            (folder / "error.txt").unlink(missing_ok=True)
        todo.append((v, job))

    runner = make_executor(spec, out, data, ctx, n_parallel, len(todo), on_epoch_end, log)
    ok, bad = runner.run_all(todo, run_status_path, log) if todo else (0, 0)
    done += ok
    failed += bad

    result = {"state": "done" if failed == 0 else "failed", "jobs": len(jobs), "done": done, "failed": failed}
    if ctx.main:
        from analysis.ablation.report import write_report

        paths = write_report(out) if done else None
        result["report"] = {k: str(p) for k, p in paths.as_dict().items()} if paths else None
        if failed:
            result["error"] = f"{failed} of {len(jobs)} jobs failed"
        write_json_atomic(run_status_path, {**read_json(run_status_path), **result, "finished_at": time.time()})
    ctx.barrier()
    if ctx.world > 1 and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    return result


def build_job(req: AblationRequest, v: Variant, seed: int, precision: Precision | None,
              threads: int | None = None) -> Job:
    """The ``Job`` of variant ``v`` and ``seed`` of ``req`` (its folder, config with ``v``'s schedule, recipe);
    ``threads``: its torch threads on a CPU (``None``: the recipe's ``cpu_threads`` or torch's default)."""
    return Job(job_folder(req.out, v.name, seed), v.name, seed, req.base.with_fusion(v.schedule), req.recipe,
               fusions=v.fusions, precision=precision, run_jobs=len(req.variants) * len(req.seeds), threads=threads)


__all__ = ["AblationRequest", "parallel_jobs", "requested_threads", "run_threads", "DatasetError", "build_job", "check_run_out", "error_line", "job_done", "locked_error", "Variant", "VariantError", "load_request", "parse_variants",
           "resolve_base", "run_ablation"]
