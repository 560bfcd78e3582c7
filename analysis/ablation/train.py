"""Training one variant for one seed: Adam, MultiStep learning rate, the official weighted heatmap
MSE, bf16 autocast and channels_last on CUDA, DistributedDataParallel under ``torchrun``.

Files of the run folder (only rank 0 writes): ``metrics.jsonl`` (one JSON object per epoch, appended),
``status.json`` (rewritten while it trains) and ``last.pth`` (model, optimizer, epoch; written to a
temporary file and renamed, so a kill never leaves a torn checkpoint). ``last.pth`` is a plain dict
of tensors, numbers and strings: ``torch.load(weights_only=True)`` reads it, and
``hrnet_core.load_checkpoint`` loads its ``state_dict`` into a model.
"""

from __future__ import annotations

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
from hrnet_core.device import resolve_device

from .coco_data import EpochSampler, KeypointData, KeypointDataset, load_coco_api, normalize
from .evaluate import evaluate
from .files import atomic_target, read_json, read_jsonl, write_json_atomic, write_jsonl
from .recipes import Recipe

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


def init_by_name(model: nn.Module, seed: int) -> nn.Module:
    """The official initialisation (convs N(0, 0.001), zero biases, BN 1/0), each weight drawn from a
    generator keyed by (seed, parameter name): the layers that fusion variants share start identical."""
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            g = torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(name.encode()))
            with torch.no_grad():
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * 0.001)
                if m.bias is not None:
                    m.bias.zero_()
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return model


def joints_mse(out: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Official ``JointsMSELoss`` with target weights: 0.5 * mean of ((pred - gt) * w)**2."""
    w = weight.unsqueeze(-1)  # (N, J, 1, 1)
    return 0.5 * ((out - target) * w).pow(2).mean()


def train_step(net: nn.Module, optimizer, x: torch.Tensor, target: torch.Tensor, weight: torch.Tensor,
               amp: bool) -> torch.Tensor:
    """One optimisation step on a batch ``x`` ``(N, 3, H, W)`` against heatmaps ``(N, J, H/4, W/4)``;
    bf16 autocast when ``amp``. Returns the (detached-able) loss."""
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
        out = net(x)
    loss = joints_mse(out.float(), target, weight)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss


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


class StatusWriter:
    def __init__(self, job: Job, ctx: DistContext):
        self.job, self.ctx = job, ctx
        self.path = job.folder / "status.json"
        self.base = {
            "variant": job.variant, "seed": job.seed, "fusions": job.fusions, "epochs": job.recipe.epochs,
            "pid": os.getpid(), "host": socket.gethostname(),
        }
        self.last_write = 0.0

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
    state = {
        "state_dict": {k: v.detach().cpu() for k, v in _unwrap(model).state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "epoch": epoch,
        "metrics_row": json.dumps(row),
        "variant": job.variant,
        "seed": job.seed,
    }
    with atomic_target(path) as tmp:
        torch.save(state, tmp)


def load_resume_state(folder: Path):
    """``(checkpoint dict, metrics rows up to its epoch)`` or ``(None, [])`` for a fresh start."""
    ckpt_path = folder / "last.pth"
    if not ckpt_path.is_file():
        return None, []
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    epoch = int(ckpt["epoch"])
    rows = [r for r in read_jsonl(folder / "metrics.jsonl") if int(r.get("epoch", 0)) < epoch]
    rows.append(json.loads(ckpt["metrics_row"]))
    return ckpt, rows


def train_job(job: Job, data: KeypointData, ctx: DistContext, resume: bool = True,
              on_epoch_end: Callable[[Job, int], None] | None = None, log=print) -> dict:
    """Train ``job`` to its last epoch (continuing from ``last.pth`` when ``resume``); returns the last
    metrics row. Raises on failure (the runner records it)."""
    recipe, dev = job.recipe, ctx.device
    folder = job.folder
    status = StatusWriter(job, ctx)
    cuda = dev.type == "cuda"
    amp = cuda and recipe.bf16
    channels_last = cuda and recipe.channels_last
    if cuda:
        torch.backends.cudnn.benchmark = True
    else:
        # The official N(0, 0.001) init drives gradients into subnormal floats, which run orders of
        # magnitude slower on CPUs; flushing them to zero changes nothing measurable.
        torch.set_flush_denormal(True)
        if recipe.cpu_threads:
            torch.set_num_threads(recipe.cpu_threads)

    seed_everything(job.seed)
    model = init_by_name(hc.build_model(job.cfg, init="default"), job.seed)
    model = model.to(dev)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)

    start, rows = 1, []
    if resume:
        ckpt, rows = load_resume_state(folder) if ctx.main else (None, [])
        ckpt = ctx.broadcast(ckpt)  # rank 0's checkpoint for every rank (the others may not see its disk)
        if ckpt is not None:
            model.load_state_dict(ckpt["state_dict"])
            optimizer.load_state_dict(ckpt["optimizer"])
            start = int(ckpt["epoch"]) + 1
            del ckpt
    if ctx.main:
        write_jsonl(folder / "metrics.jsonl", rows)
    wall_before = float(rows[-1]["wall_s"]) if rows else 0.0
    if start > recipe.epochs:
        status.write(state="done", epoch=recipe.epochs, eta_s=0.0, error=None)
        return rows[-1] if rows else {}

    train_model = model
    if ctx.world > 1:
        # Without a fusion in the last module the lower branches feed nothing: no gradient reaches them.
        unused = not job.cfg.stages[-1].fuse[-1]
        train_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[dev.index] if cuda else None, find_unused_parameters=unused)

    input_hw = job.cfg.input_hw
    train_ds = KeypointDataset(data.train_records, input_hw, recipe.sigma, train=True, augment=recipe.augment,
                               seed=job.seed)
    val_ds = KeypointDataset(data.val_records, input_hw, recipe.sigma)
    workers = recipe.resolve_workers()
    sampler = EpochSampler(len(train_ds), job.seed, start, rank=ctx.rank, world=ctx.world)
    loader = torch.utils.data.DataLoader(
        train_ds, batch_size=recipe.batch_size, sampler=sampler, num_workers=workers, pin_memory=cuda,
        persistent_workers=workers > 0, prefetch_factor=4 if workers > 0 else None, drop_last=False)
    coco_gt = load_coco_api(data.val_ann_file) if ctx.main else None
    epoch_times: list[float] = []  # of this session
    steps = len(loader)
    status.write(state="running", epoch=start - 1, step=0, steps=steps, error=None, started_at=time.time())

    for epoch in range(start, recipe.epochs + 1):
        t_epoch = time.perf_counter()
        lr = recipe.lr_at(epoch)
        for g in optimizer.param_groups:
            g["lr"] = lr
        sampler.epoch = epoch
        train_model.train()
        if cuda:
            torch.cuda.reset_peak_memory_stats(dev)
        loss_sum = torch.zeros((), device=dev, dtype=torch.float64)
        seen = 0
        last_loss = float("nan")
        for step, (images, target, weight, _idx) in enumerate(loader, 1):
            images = images.to(dev, non_blocking=True)
            target = target.to(dev, non_blocking=True)
            weight = weight.to(dev, non_blocking=True)
            x = normalize(images)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            loss = train_step(train_model, optimizer, x, target, weight, amp)
            loss_sum += loss.detach().double() * images.shape[0]
            seen += images.shape[0]
            if ctx.main and time.monotonic() - status.last_write > STATUS_EVERY_S:
                last_loss = float(loss.item())
                if not math.isfinite(last_loss):
                    raise FloatingPointError(f"training loss is {last_loss} at epoch {epoch}, step {step}")
                done = (epoch - start) + step / max(1, steps)
                per_epoch = (time.perf_counter() - t_epoch) / max(1e-9, step / max(1, steps))
                status.write(state="running", epoch=epoch - 1, step=step, steps=steps, loss=last_loss, lr=lr,
                             eta_s=per_epoch * (recipe.epochs - start + 1 - done))
        # Global mean loss and images over all ranks.
        totals = torch.stack([loss_sum, torch.tensor(float(seen), device=dev, dtype=torch.float64)])
        if ctx.world > 1:
            dist.all_reduce(totals)
        if cuda:
            torch.cuda.synchronize(dev)
        train_s = time.perf_counter() - t_epoch
        train_loss = float(totals[0] / max(1.0, float(totals[1])))
        if not math.isfinite(train_loss):
            raise FloatingPointError(f"training loss is {train_loss} at epoch {epoch}")
        row = {
            "epoch": epoch,
            "train_loss": train_loss,
            "lr": lr,
            "images": int(totals[1]),
            "images_per_s": float(totals[1]) / max(1e-9, train_s),
            "train_s": train_s,
            "peak_mem_mib": torch.cuda.max_memory_allocated(dev) / 2**20 if cuda else None,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
        if epoch % recipe.eval_every == 0 or epoch == recipe.epochs:
            t_eval = time.perf_counter()
            if ctx.main:
                status.write(state="running", epoch=epoch - 1, step=steps, steps=steps, loss=train_loss,
                             phase="evaluating")
                row.update(evaluate(_unwrap(train_model), val_ds, coco_gt, dev, recipe.eval_batch_size,
                                    recipe.flip_test, amp, channels_last, workers=min(workers, 4)))
            ctx.barrier()
            row["eval_s"] = time.perf_counter() - t_eval
        row["epoch_s"] = time.perf_counter() - t_epoch
        epoch_times.append(row["epoch_s"])
        row["wall_s"] = wall_before + sum(epoch_times)
        if ctx.main:
            save_checkpoint(folder / "last.pth", train_model, optimizer, epoch, row, job)
            with open(folder / "metrics.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
            eta = float(np.mean(epoch_times[-5:])) * (recipe.epochs - epoch)
            status.write(state="running" if epoch < recipe.epochs else "done", epoch=epoch, step=0, steps=steps,
                         loss=train_loss, lr=lr, eta_s=eta, AP=row.get("AP"), phase="training", error=None)
            ap = f" AP {row['AP']:.3f}" if row.get("AP") is not None else ""
            log(f"  {job.variant} seed{job.seed} epoch {epoch}/{recipe.epochs}: loss {train_loss:.3e}{ap} "
                f"{row['images_per_s']:.0f} img/s {row['epoch_s']:.1f} s")
        ctx.barrier()
        if on_epoch_end is not None:
            on_epoch_end(job, epoch)
    return row
