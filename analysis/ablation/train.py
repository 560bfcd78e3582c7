"""Training one variant for one seed: Adam, MultiStep learning rate, the official weighted heatmap
MSE, bf16 autocast and channels_last on CUDA, DistributedDataParallel under ``torchrun``.

Files of the run folder (only rank 0 writes): ``metrics.jsonl`` (one JSON object per epoch, appended),
``status.json`` (rewritten while it trains) and ``last.pth`` (model, optimizer, epoch; written to a
temporary file and renamed, so a kill never leaves a torn checkpoint). ``last.pth`` is a plain dict
of tensors, numbers and strings: ``torch.load(weights_only=True)`` reads it, and
``hrnet_core.load_checkpoint`` loads its ``state_dict`` into a model.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import resource
import socket
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

import hrnet_core as hc
from analysis.ablation.coco_data import EpochSampler, KeypointData, KeypointDataset, load_coco_api, normalize
from analysis.ablation.evaluate import evaluate
from analysis.ablation.files import atomic_target, read_json, read_jsonl, write_json_atomic, write_jsonl
from analysis.ablation.precision import Precision, choose_precision
from analysis.ablation.progress import format_eta
from analysis.ablation.recipes import Recipe
from analysis.ablation.step import cpu_training_state, train_step
from analysis.ablation.threads import denormals_flushed_on_every_thread
from hrnet_core.checkpoint import CheckpointError, check_checkpoint_file
from hrnet_core.device import resolve_device
from hrnet_core.errors import UserInputError

STATUS_EVERY_S = 5.0


# ---- distributed context -------------------------------------------------------------------
@dataclass
class DistContext:
    """Device and process group: ``world`` > 1 under ``torchrun`` (``WORLD_SIZE`` set)."""

    device: torch.device
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    def broadcast(self, obj):
        """Rank 0's ``obj`` on every rank (itself when there is one process)."""
        if self.world <= 1:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0, device=self.device if self.device.type == "cuda" else None)
        return box[0]

    def barrier(self) -> None:
        if self.world > 1:
            if self.device.type == "cuda":
                dist.barrier(device_ids=[self.device.index or 0])
            else:
                dist.barrier()


def make_context(device: str = "auto") -> DistContext:
    """Resolve ``device`` (auto | cpu | cuda) and join the process group when launched by torchrun."""
    dev = resolve_device(device)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext(dev)
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = dev.type == "cuda"
    if use_cuda:  # one GPU per process: the local rank's
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return DistContext(dev, rank, world, local)


# ---- model ---------------------------------------------------------------------------------
def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def init_by_name(model: nn.Module, seed: int, scheme: str = "official") -> nn.Module:
    """Initialise ``model``, each weight drawn from a generator keyed by (seed, parameter name), so the
    layers that fusion variants share start identical.

    ``official``: convs N(0, 0.001), zero biases, BN 1/0 (official ``init_weights``). ``pytorch``:
    PyTorch's own defaults (Kaiming-uniform convs), BN 1/0, and the output convolution N(0, 0.001) so
    the first heatmaps are near zero as with the official scheme. On a CPU the official scale drives
    gradients and Adam's moments into subnormal floats: training flushes them to zero on every thread
    (``step.cpu_training_state``, checked by ``threads.denormals_flushed_on_every_thread``).
    """
    if scheme not in ("official", "pytorch"):
        raise ValueError(f"unknown init {scheme!r}; expected official or pytorch")
    convs = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    last = convs[-1][1] if convs else None
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            g = torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(name.encode()))
            with torch.no_grad():
                if scheme == "official" or m is last:
                    m.weight.copy_(torch.randn(m.weight.shape, generator=g) * 0.001)
                    if m.bias is not None:
                        m.bias.zero_()
                else:
                    nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=g)
                    if m.bias is not None:
                        bound = 1 / math.sqrt(max(1, m.weight[0].numel()))
                        nn.init.uniform_(m.bias, -bound, bound, generator=g)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return model


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") else model


# ---- one job -------------------------------------------------------------------------------
@dataclass
class Job:
    """One variant and seed of an ablation, trained in ``folder``."""

    folder: Path
    variant: str
    seed: int
    cfg: hc.HRNetConfig
    recipe: Recipe
    fusions: int = 0
    extra_status: dict = field(default_factory=dict)
    precision: Precision | None = None  # None: chosen (measured on CPU) when the job starts
    run_jobs: int = 1  # jobs of the whole run (for the duration estimate printed at the start)
    threads: int | None = None  # torch threads on a CPU (``threads.job_threads``); None: recipe.cpu_threads


class StatusWriter:
    def __init__(self, job: Job, ctx: DistContext):
        self.job, self.ctx = job, ctx
        self.path = job.folder / "status.json"
        self.base = {
            "variant": job.variant, "seed": job.seed, "fusions": job.fusions, "epochs": job.recipe.epochs,
            "pid": os.getpid(), "host": socket.gethostname(),
        }
        self.last_write = 0.0
        self.last_log = 0.0
        self.progress_logged = False

    def log_progress(self, log, epoch: int, step: int, steps: int, loss: float, images_per_s: float,
                     eta_s: float) -> None:
        log(f"  {self.job.variant} seed{self.job.seed} epoch {epoch}/{self.job.recipe.epochs} step {step}/{steps}: "
            f"loss {loss:.3e}, {images_per_s:.1f} img/s, ETA {format_eta(eta_s)}")
        self.last_log = time.monotonic()
        self.progress_logged = True

    def write(self, **kw) -> None:
        if not self.ctx.main:
            return
        cur = read_json(self.path)
        cur.update(self.base)
        cur.update(kw)
        cur["updated_at"] = time.time()
        write_json_atomic(self.path, cur)
        self.last_write = time.monotonic()


def save_checkpoint(path: Path, model: nn.Module, optimizer, epoch: int, row: dict, job: Job) -> None:
    """``last.pth`` (with the optimizer, to resume) or, with ``optimizer=None``, ``best.pth`` (weights
    only); both read by ``hrnet_core.load_checkpoint`` and ``torch.load(weights_only=True)``."""
    state = {
        "state_dict": {k: v.detach().cpu() for k, v in _unwrap(model).state_dict().items()},
        **({"optimizer": optimizer.state_dict()} if optimizer is not None else {}),
        "epoch": epoch,
        "metrics_row": json.dumps(row),
        "variant": job.variant,
        "seed": job.seed,
    }
    with atomic_target(path) as tmp:
        torch.save(state, tmp)
        if optimizer is not None and path.is_file():
            # The previous epoch's complete checkpoint stays as ``prev.pth``: a ``last.pth`` damaged
            # later (a torn copy, a bad disk) then costs one epoch instead of the job.
            os.replace(path, path.with_name(PREVIOUS_CHECKPOINT))


PREVIOUS_CHECKPOINT = "prev.pth"


class DamagedCheckpointError(UserInputError):
    """No resumable checkpoint in a job folder that has one: ``last.pth`` (and ``prev.pth``) unreadable."""


def _read_resume_checkpoint(path: Path) -> dict:
    try:
        check_checkpoint_file(path)  # damaged zip, not a checkpoint, oversized: said before unpickling
    except CheckpointError as err:
        raise ValueError(str(err).removeprefix(f"{path}: ")) from None
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or not {"state_dict", "optimizer", "epoch", "metrics_row"} <= set(ckpt):
        raise ValueError("not a training checkpoint of this runner")
    int(ckpt["epoch"])
    json.loads(ckpt["metrics_row"])
    return ckpt


def _why(err: BaseException) -> str:
    first = (str(err).strip().splitlines() or [err.__class__.__name__])[0]
    return first[:120]


def load_resume_state(folder: Path, log=print):
    """``(checkpoint dict, metrics rows up to its epoch)`` from ``last.pth``, or from ``prev.pth`` (one
    epoch earlier) when ``last.pth`` is missing or damaged; ``(None, [])`` for a fresh start.

    Raises ``DamagedCheckpointError`` (one line: which file, why, how to recover) when the folder has a
    checkpoint but none of them loads."""
    last, prev = folder / "last.pth", folder / PREVIOUS_CHECKPOINT
    if not last.is_file() and not prev.is_file():
        return None, []
    ckpt, problems = None, []
    for path in (last, prev):
        if not path.is_file():
            continue
        try:
            ckpt = _read_resume_checkpoint(path)
        except Exception as err:  # torn zip, truncated pickle, wrong content: try the previous epoch
            problems.append(f"{path.name} {_why(err)}")
            continue
        if problems:
            log(f"  {folder}: {problems[0]}; resuming from {path.name} (epoch {int(ckpt['epoch'])})")
        break
    if ckpt is None:
        raise DamagedCheckpointError(
            f"{folder}: no readable checkpoint ({'; '.join(problems)}); delete {last.name} and "
            f"{prev.name} there to retrain this job from epoch 1")
    epoch = int(ckpt["epoch"])
    rows = [r for r in read_jsonl(folder / "metrics.jsonl") if int(r.get("epoch", 0)) < epoch]
    rows.append(json.loads(ckpt["metrics_row"]))
    return ckpt, rows


class StepClock:
    """Measured step times of this session -> images/s and the time left (training and evaluation).

    The first step (allocator warm-up, worker start) is left out of the mean once others are known."""

    def __init__(self, steps_per_epoch: int, epochs_left: int, evals_left: int, val_images: int, batch: int):
        self.steps_per_epoch, self.epochs_left, self.evals_left = steps_per_epoch, epochs_left, evals_left
        self.val_images, self.batch = val_images, batch
        self.times: list[float] = []
        self.eval_s: float | None = None
        self.t_last = time.perf_counter()

    def tick(self) -> None:
        now = time.perf_counter()
        self.times.append(now - self.t_last)
        self.t_last = now

    def restart(self) -> None:
        self.t_last = time.perf_counter()

    @property
    def step_s(self) -> float:
        t = self.times[1:] if len(self.times) > 2 else self.times
        return float(np.mean(t[-50:])) if t else float("nan")

    def eta_s(self, epoch_index: int, step: int) -> float:
        """Seconds left after ``step`` of the ``epoch_index``-th (0-based) epoch of this session."""
        steps_left = (self.epochs_left - epoch_index) * self.steps_per_epoch - step
        # Evaluation is a forward pass only, roughly a third of a training step per image.
        per_eval = self.eval_s if self.eval_s is not None else self.step_s / self.batch * self.val_images / 3
        return max(0.0, steps_left * self.step_s + self.evals_left * per_eval)


PROGRESS_EVERY_S = 30.0
CPU_RECIPE_HINT = ("quick", "paper")


def _unused_parameters(cfg: hc.HRNetConfig) -> bool:
    # Without a fusion in the last module the lower branches feed nothing: no gradient reaches them.
    return not cfg.fusion_schedule[-1][-1]


def train_job(job: Job, data: KeypointData, ctx: DistContext, resume: bool = True,
              on_epoch_end: Callable[[Job, int], None] | None = None, log=print) -> dict:
    """Train ``job`` to its last epoch (continuing from ``last.pth`` when ``resume``); returns the last
    metrics row. Raises on failure (the runner records it).

    Writes ``metrics.jsonl``, ``status.json`` (state, step, loss, images/s, ETA every few seconds),
    ``last.pth`` every epoch and ``best.pth`` whenever the validation AP is the best so far. Under
    ``torchrun`` each rank trains on its own disjoint shard of every epoch (no padding; DDP's ``join``
    evens out the last step) and rank 0 records the shards in ``shards.json``."""
    if ctx.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        return _train_job(job, data, ctx, resume, on_epoch_end, log)
    with cpu_training_state(job.threads or job.recipe.cpu_threads):
        return _train_job(job, data, ctx, resume, on_epoch_end, log)


def _train_job(job: Job, data: KeypointData, ctx: DistContext, resume: bool,
               on_epoch_end: Callable[[Job, int], None] | None, log) -> dict:
    recipe, dev = job.recipe, ctx.device
    folder = job.folder
    status = StatusWriter(job, ctx)
    cuda = dev.type == "cuda"
    seed_everything(job.seed)
    model = init_by_name(hc.build_model(job.cfg, init="default"), job.seed, recipe.init).to(dev)
    input_hw = job.cfg.input_hw
    train_ds = KeypointDataset(data.train_records, input_hw, recipe.sigma, train=True, augment=recipe.augment,
                               seed=job.seed)
    val_ds = KeypointDataset(data.val_records, input_hw, recipe.sigma)
    precision = job.precision
    if precision is None:
        precision = choose_precision(dev, recipe, model, probe_batch(train_ds, recipe.batch_size, dev))
    amp, channels_last = precision.amp, precision.channels_last
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)

    start, rows = 1, []
    if resume:
        ckpt, rows = load_resume_state(folder, log) if ctx.main else (None, [])
        ckpt = ctx.broadcast(ckpt)  # rank 0's checkpoint for every rank (the others may not see its disk)
        if ckpt is not None:
            model.load_state_dict(ckpt["state_dict"])
            optimizer.load_state_dict(ckpt["optimizer"])
            start = int(ckpt["epoch"]) + 1
            del ckpt
    if ctx.main:
        write_jsonl(folder / "metrics.jsonl", rows)
    wall_before = float(rows[-1]["wall_s"]) if rows else 0.0
    best_ap = max((float(r["AP"]) for r in rows if r.get("AP") is not None), default=-1.0)
    if start > recipe.epochs:
        status.write(state="done", epoch=recipe.epochs, eta_s=0.0, error=None)
        return rows[-1] if rows else {}

    train_model = model
    if ctx.world > 1:
        train_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[dev.index] if cuda else None, find_unused_parameters=_unused_parameters(job.cfg))

    workers = recipe.resolve_workers(dev, None if cuda else torch.get_num_threads())
    sampler = EpochSampler(len(train_ds), job.seed, start, rank=ctx.rank, world=ctx.world, pad=False)
    loader = torch.utils.data.DataLoader(
        train_ds, batch_size=recipe.batch_size, sampler=sampler, num_workers=workers, pin_memory=cuda,
        persistent_workers=workers > 0, prefetch_factor=4 if workers > 0 else None, drop_last=False)
    coco_gt = load_coco_api(data.val_ann_file) if ctx.main else None
    epoch_times: list[float] = []  # of this session
    steps = len(loader)
    evals_left = sum(1 for e in range(start, recipe.epochs + 1) if e % recipe.eval_every == 0 or e == recipe.epochs)
    clock = StepClock(steps, recipe.epochs - start + 1, evals_left, len(val_ds), recipe.batch_size * ctx.world)
    status.write(state="running", epoch=start - 1, step=0, steps=steps, error=None, started_at=time.time(),
                 phase="training", precision=precision.label)
    if ctx.main:
        threads = "" if cuda else f", {torch.get_num_threads()} CPU thread(s)"
        log(f"  {job.variant} seed{job.seed}: {len(train_ds)} training persons, {steps} steps per epoch, "
            f"epochs {start}..{recipe.epochs}, {precision.label} ({precision.reason}), {workers} loader worker(s)"
            f"{threads}")
        if not cuda and not denormals_flushed_on_every_thread():
            log(f"  {job.variant} seed{job.seed}: warning: subnormal floats are not flushed on every CPU thread; "
                "training may run several times slower (try --cpu-threads 1)")

    for epoch in range(start, recipe.epochs + 1):
        t_epoch = time.perf_counter()
        sampler.epoch = epoch
        train_model.train()
        if cuda:
            torch.cuda.reset_peak_memory_stats(dev)
        loss_sum = torch.zeros((), device=dev, dtype=torch.float64)
        seen = 0
        shard: list[int] = []
        epoch_index = epoch - start
        clock.restart()
        join = train_model.join() if ctx.world > 1 else contextlib.nullcontext()
        with join:
            for step, (images, target, weight, idx) in enumerate(loader, 1):
                lr = recipe.lr_at(epoch, (step - 1) / max(1, steps))
                for g in optimizer.param_groups:
                    g["lr"] = lr
                images = images.to(dev, non_blocking=True)
                target = target.to(dev, non_blocking=True)
                weight = weight.to(dev, non_blocking=True)
                x = normalize(images)
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                loss = train_step(train_model, optimizer, x, target, weight, amp)
                loss_sum += loss.detach().double() * images.shape[0]
                seen += images.shape[0]
                if ctx.world > 1:
                    shard.extend(int(i) for i in idx)
                if cuda and step % 10 == 0:
                    torch.cuda.synchronize(dev)
                clock.tick()
                if not ctx.main:
                    continue
                since = time.monotonic() - status.last_write
                # The first line once three steps give a rate, and at most ~8 s after the first step.
                first = not status.progress_logged and (len(clock.times) >= 3 or sum(clock.times) >= 8.0)
                if first or since > STATUS_EVERY_S:
                    last_loss = float(loss.item())
                    if not math.isfinite(last_loss):
                        raise FloatingPointError(f"training loss is {last_loss} at epoch {epoch}, step {step}")
                    ips = recipe.batch_size * ctx.world / clock.step_s
                    eta = clock.eta_s(epoch_index, step)
                    status.write(state="running", epoch=epoch - 1, step=step, steps=steps, loss=last_loss, lr=lr,
                                 images_per_s=ips, eta_s=eta, phase="training")
                    if first or time.monotonic() - status.last_log > PROGRESS_EVERY_S:
                        status.log_progress(log, epoch, step, steps, last_loss, ips, eta)
                        if first:
                            _hint_cpu_recipe(job, dev, clock, eta, log)
        # Global mean loss and images over all ranks.
        totals = torch.stack([loss_sum, torch.tensor(float(seen), device=dev, dtype=torch.float64)])
        if ctx.world > 1:
            dist.all_reduce(totals)
            shards: list = [None] * ctx.world
            dist.all_gather_object(shards, shard)
            if ctx.main:
                write_json_atomic(folder / "shards.json", {"epoch": epoch, "n": len(train_ds), "ranks": shards})
        if cuda:
            torch.cuda.synchronize(dev)
        train_s = time.perf_counter() - t_epoch
        train_loss = float(totals[0] / max(1.0, float(totals[1])))
        if not math.isfinite(train_loss):
            raise FloatingPointError(f"training loss is {train_loss} at epoch {epoch}")
        row = {
            "epoch": epoch,
            "train_loss": train_loss,
            "lr": recipe.lr_at(epoch, 1.0 - 1.0 / max(1, steps)),
            "images": int(totals[1]),
            "images_per_s": float(totals[1]) / max(1e-9, train_s),
            "train_s": train_s,
            "peak_mem_mib": torch.cuda.max_memory_allocated(dev) / 2**20 if cuda else None,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
        evaluated = epoch % recipe.eval_every == 0 or epoch == recipe.epochs
        if evaluated:
            t_eval = time.perf_counter()
            if ctx.main:
                status.write(state="running", epoch=epoch - 1, step=steps, steps=steps, loss=train_loss,
                             phase="evaluating", eta_s=clock.eta_s(epoch_index + 1, 0))
                row.update(evaluate(_unwrap(train_model), val_ds, coco_gt, dev, recipe.eval_batch_size,
                                    recipe.flip_test, amp, channels_last, workers=min(workers, 4),
                                    per_joint=epoch == recipe.epochs))
            ctx.barrier()
            row["eval_s"] = time.perf_counter() - t_eval
            clock.eval_s = row["eval_s"]
            clock.evals_left -= 1
        row["epoch_s"] = time.perf_counter() - t_epoch
        epoch_times.append(row["epoch_s"])
        row["wall_s"] = wall_before + sum(epoch_times)
        if ctx.main:
            save_checkpoint(folder / "last.pth", train_model, optimizer, epoch, row, job)
            if row.get("AP") is not None and float(row["AP"]) > best_ap:
                best_ap = float(row["AP"])
                save_checkpoint(folder / "best.pth", train_model, None, epoch, row, job)
            with open(folder / "metrics.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
            eta = clock.eta_s(epoch_index + 1, 0)
            status.write(state="running" if epoch < recipe.epochs else "done", epoch=epoch, step=0, steps=steps,
                         loss=train_loss, lr=row["lr"], eta_s=eta, AP=row.get("AP"), best_AP=max(best_ap, 0.0)
                         if best_ap >= 0 else None, phase="training", error=None,
                         images_per_s=row["images_per_s"])
            ap = f" AP {row['AP']:.3f}" if row.get("AP") is not None else ""
            log(f"  {job.variant} seed{job.seed} epoch {epoch}/{recipe.epochs}: loss {train_loss:.3e}{ap} "
                f"{row['images_per_s']:.1f} img/s {row['epoch_s']:.1f} s")
        ctx.barrier()
        if on_epoch_end is not None:
            on_epoch_end(job, epoch)
    return row


def probe_batch(dataset: KeypointDataset, batch_size: int, device: torch.device):
    """One real training batch ``(x, target, weight)`` on ``device`` for the precision probe."""
    items = [dataset[(i % len(dataset), 0)] for i in range(batch_size)]
    images = torch.stack([it[0] for it in items]).to(device)
    target = torch.stack([it[1] for it in items]).to(device)
    weight = torch.stack([it[2] for it in items]).to(device)
    return normalize(images), target, weight


def _hint_cpu_recipe(job: Job, dev: torch.device, clock: StepClock, eta: float, log) -> None:
    """On a CPU, a GPU recipe gets an estimate of its duration from the first steps and a pointer to
    the ``cpu`` recipe."""
    if dev.type != "cpu" or job.recipe.name not in CPU_RECIPE_HINT:
        return
    total = eta * job.run_jobs
    log(f"  note: recipe {job.recipe.name} is sized for a GPU; from the first steps this job needs about "
        f"{format_eta(eta)} on this CPU and the run ({job.run_jobs} job{'' if job.run_jobs == 1 else 's'}) about "
        f"{format_eta(total)}. "
        f"`--recipe cpu` runs the 1/3/8-fusion ablation with 3 seeds on 2 CPU cores in about 45 min.")
