"""Train one model on one prepared dataset with the paper's recipe.

    python -m pipeline.train --data data/prepared/synthetic --model dyglnet --out runs/synthetic/dyglnet/seed42
    torchrun --nproc_per_node=N -m pipeline.train ...      # DistributedDataParallel, same arguments

Recipe (defaults from the ``train:`` section of params.yaml): AdamW (lr 1e-3, betas 0.9/0.999,
weight decay 3e-5); per-step schedule with linear warm-up over the first ``warmup_epochs`` (scaled by
epochs/130 for shorter runs) then polynomial decay (power 0.9) to zero at the end of the last epoch;
gradient clipping at global norm 1.0; loss 0.5 BCE-with-logits + 0.5 batch-level soft Dice
(segmentation_models_pytorch's DiceLoss); fp16 autocast with a GradScaler on CUDA, fp32 on the CPU.
``--batch-size`` is the global batch: under torchrun each of N processes gets batch/N.

Outputs in ``--out``: ``last.pt`` and ``best.pt`` (atomic; model, optimiser, scheduler, scaler,
epoch, RNG states, config), ``log.csv`` (one row per epoch) and ``train.json`` (final summary).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from datasets.fsutil import atomic_link, atomic_write_bytes, atomic_write_json
from datasets.splits import resolve_selection
from datasets.torch_data import SegmentationArrays, build_transforms, seed_transform, seed_worker
from models import create_model
from pipeline.checkpoint import load_checkpoint, save_checkpoint
from pipeline.cli import run
from pipeline.metrics import binarize_logits, overlap_metrics
from pipeline.params import load_params
from pipeline.recipe import BceDiceLoss, warmup_poly_factor
from pipeline.runtime import interactive, resolve_device, rng_state, seed_everything, set_rng_state

LOG_COLUMNS = ["epoch", "lr", "train_loss", "train_dice", "val_dice", "val_loss", "seconds"]


@dataclass
class TrainConfig:
    """Everything that determines a training run (saved in every checkpoint)."""

    data: str
    model: str
    out: str
    epochs: int = 130
    batch_size: int = 16
    img_size: int = 224
    seed: int = 42
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 3e-5
    warmup_epochs: float = 10
    reference_epochs: int = 130  # warm-up is scaled by epochs / reference_epochs when training shorter
    poly_power: float = 0.9
    grad_clip: float = 1.0
    amp: bool = True  # only takes effect on CUDA
    bce_weight: float = 0.5
    dice_weight: float = 0.5
    dice_smooth: float = 1.0
    num_workers: int = 2
    selection: str = "last"  # model selection when the dataset has no validation split: last | carve
    sync_bn: bool = False
    device: str = "auto"
    model_kwargs: dict = field(default_factory=dict)
    augment: dict = field(default_factory=dict)

    @classmethod
    def from_params(cls, **overrides) -> TrainConfig:
        """Defaults <- params.yaml ``train:`` <- ``models.<model>:`` <- explicit overrides (None = not given)."""
        params = load_params()
        spec = params.model_spec(overrides["model"])
        values = {**spec.recipe.model_dump(), "model_kwargs": spec.model_kwargs, "augment": params.augment.model_dump()}
        values.update({k: v for k, v in overrides.items() if v is not None})
        values = {k: v for k, v in values.items() if k in cls.__dataclass_fields__}
        values["betas"] = tuple(values["betas"])
        return cls(**values)


# ----------------------------------------------------------------------------------------------
# Distributed helpers (a single process is world size 1)
# ----------------------------------------------------------------------------------------------


def init_distributed(device_name: str) -> tuple[int, int, torch.device]:
    """Join the torchrun process group if launched by torchrun; return (rank, world size, device)."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return 0, 1, resolve_device(device_name)
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    device = resolve_device(device_name)
    if device.type == "cuda":
        local_rank = int(os.environ.get("LOCAL_RANK", 0))
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return rank, world, device


def all_reduce_sum(values: list[float], device: torch.device) -> list[float]:
    """Sum a few scalars over all processes (identity without a process group)."""
    if not (dist.is_available() and dist.is_initialized()):
        return [float(v) for v in values]
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


# ----------------------------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------------------------


def make_loaders(cfg: TrainConfig, rank: int, world: int, device: torch.device):
    """Training loader (distributed sampler, seeded workers) and validation loader."""
    split = json.loads((Path(cfg.data) / "split.json").read_text())
    train_ids, val_ids = resolve_selection(split, cfg.selection, cfg.seed)
    train_set = SegmentationArrays(cfg.data, train_ids, build_transforms(cfg.augment, cfg.img_size, True, cfg.seed))
    val_set = SegmentationArrays(cfg.data, val_ids, build_transforms(cfg.augment, cfg.img_size, train=False))
    if cfg.batch_size % world:
        raise SystemExit(f"error: --batch-size {cfg.batch_size} is not divisible by {world} processes")
    local_batch = cfg.batch_size // world
    if len(train_set) < cfg.batch_size:
        raise SystemExit(
            f"error: {cfg.data}: {len(train_set)} training images, fewer than one batch of {cfg.batch_size}"
        )
    # The same sampler for one process and for N: with a fixed global batch, N processes see exactly
    # the images one process sees in each step.
    sampler = DistributedSampler(train_set, num_replicas=world, rank=rank, shuffle=True, seed=cfg.seed, drop_last=True)
    generator = torch.Generator()
    train_loader = DataLoader(
        train_set,
        batch_size=local_batch,
        sampler=sampler,
        num_workers=cfg.num_workers,
        worker_init_fn=seed_worker,
        generator=generator,
        drop_last=True,  # a batch of 1 breaks BatchNorm
        pin_memory=device.type == "cuda",
        persistent_workers=False,
    )
    val_loader = DataLoader(val_set, batch_size=local_batch, shuffle=False, num_workers=cfg.num_workers)
    return train_loader, val_loader, sampler, generator


@torch.no_grad()
def validate(model: nn.Module, loader, criterion, device) -> tuple[float, float]:
    """(mean per-image Dice at threshold 0.5, mean loss) over a loader; NaN when it is empty."""
    model.eval()
    dices, loss_sum, n = [], 0.0, 0
    for images, masks in loader:
        images, masks = images.to(device), masks.to(device)
        logits = model(images)
        loss_sum += criterion(logits, masks).item() * len(images)
        n += len(images)
        dices.append(overlap_metrics(binarize_logits(logits), masks > 0.5)["dice"])
    if n == 0:
        return float("nan"), float("nan")
    return float(np.concatenate(dices).mean()), loss_sum / n


def train(cfg: TrainConfig, resume: bool = False) -> dict:
    """Run (or resume) training; returns the summary written to ``train.json``."""
    rank, world, device = init_distributed(cfg.device)
    out = Path(cfg.out)
    is_main = rank == 0
    seed_everything(cfg.seed)
    use_amp = cfg.amp and device.type == "cuda"

    train_loader, val_loader, sampler, generator = make_loaders(cfg, rank, world, device)
    model = create_model(cfg.model, **cfg.model_kwargs).to(device)
    if cfg.sync_bn and world > 1:
        if device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        elif is_main:
            print("sync_bn: PyTorch's SyncBatchNorm needs CUDA; keeping per-process BatchNorm on the CPU", flush=True)
    net = (
        DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        if world > 1
        else model
    )
    criterion = BceDiceLoss(cfg.bce_weight, cfg.dice_weight, cfg.dice_smooth)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    steps_per_epoch = len(train_loader)
    total_steps = cfg.epochs * steps_per_epoch
    warmup_steps = round(cfg.warmup_epochs * min(1.0, cfg.epochs / cfg.reference_epochs) * steps_per_epoch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_poly_factor(step, total_steps, warmup_steps, cfg.poly_power)
    )
    scaler = torch.amp.GradScaler(device.type, enabled=use_amp)

    start_epoch, best_dice, log_rows = 0, -math.inf, []
    if resume and (out / "last.pt").exists():
        state = load_checkpoint(out / "last.pt", map_location=device)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        start_epoch, best_dice = state["epoch"] + 1, state["best_val_dice"]
        log_rows = list(state["log"])
        set_rng_state(state["rng"][rank] if isinstance(state["rng"], list) else state["rng"])
        if is_main:
            print(f"resuming {out} after epoch {state['epoch']}", flush=True)
    elif resume and is_main:
        print(f"--resume: no {out / 'last.pt'} yet, starting from scratch", flush=True)

    no_val = len(val_loader.dataset) == 0
    bar_enabled = is_main and interactive()
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.time()
        sampler.set_epoch(epoch)
        generator.manual_seed(cfg.seed * 10_000 + epoch)  # worker seeds depend on (seed, epoch) only
        seed_transform(train_loader.dataset.transform, cfg.seed * 10_000 + epoch)  # for num_workers=0
        net.train()
        loss_sum = dice_sum = seen = 0.0
        bar = tqdm(train_loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False, disable=not bar_enabled)
        for step, (images, masks) in enumerate(bar):
            images, masks = images.to(device, non_blocking=True), masks.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
                logits = net(images)
                loss = criterion(logits, masks)
            batch_dice = overlap_metrics(binarize_logits(logits.detach()), masks > 0.5)["dice"].sum()
            total_loss, total_dice, total_n = all_reduce_sum(
                [loss.item() * len(images), batch_dice, len(images)], device
            )
            if not math.isfinite(total_loss):
                raise FloatingPointError(
                    f"non-finite training loss at epoch {epoch + 1}, step {step + 1}; "
                    f"{out / 'last.pt'} still holds the last good epoch"
                )
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            loss_sum, dice_sum, seen = loss_sum + total_loss, dice_sum + total_dice, seen + total_n
            bar.set_postfix(
                loss=f"{loss_sum / seen:.4f}", dice=f"{dice_sum / seen:.4f}", lr=f"{scheduler.get_last_lr()[0]:.2e}"
            )

        val_dice, val_loss = validate(model, val_loader, criterion, device) if is_main else (math.nan, math.nan)
        row = {
            "epoch": epoch + 1,
            "lr": optimizer.param_groups[0]["lr"],
            "train_loss": loss_sum / seen,
            "train_dice": dice_sum / seen,
            "val_dice": val_dice,
            "val_loss": val_loss,
            "seconds": round(time.time() - t0, 3),
        }
        log_rows.append(row)
        rngs = _gather_rng_states(world)
        if is_main:
            improved = no_val or val_dice > best_dice  # "last" selection keeps the latest epoch as best
            best_dice = val_dice if improved and not no_val else best_dice
            state = {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(),
                "epoch": epoch,
                "best_val_dice": best_dice,
                "log": log_rows,
                "rng": rngs,
                "config": asdict(cfg),
            }
            save_checkpoint(out / "last.pt", state)
            if improved:
                atomic_link(out / "last.pt", out / "best.pt")  # same bytes: no second serialisation
            _write_log(out / "log.csv", log_rows)
            print(
                f"epoch {epoch + 1}/{cfg.epochs} lr {row['lr']:.2e} loss {row['train_loss']:.4f} "
                f"dice {row['train_dice']:.4f} val_dice {val_dice:.4f} val_loss {val_loss:.4f} "
                f"{row['seconds']:.1f}s{' *' if improved else ''}",
                flush=True,
            )
        if world > 1:
            dist.barrier()

    summary = {
        "model": cfg.model,
        "epochs": cfg.epochs,
        "best_val_dice": None if no_val else best_dice,
        "selection": "last" if no_val else "best_val_dice",
        "final_train_loss": log_rows[-1]["train_loss"] if log_rows else None,
        "train_seconds": round(sum(r["seconds"] for r in log_rows), 2),
        "world_size": world,
    }
    if is_main:
        atomic_write_json(out / "train.json", summary)
    if world > 1:
        dist.destroy_process_group()
    return summary


def _gather_rng_states(world: int):
    state = rng_state()
    if world == 1:
        return state
    states = [None] * world
    dist.all_gather_object(states, state)
    return states


def _write_log(path: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=LOG_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(path, buf.getvalue().encode())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", required=True, help="a prepared dataset folder (python -m pipeline.prepare)")
    parser.add_argument("--model", required=True, help="a registered model name (python -m models)")
    parser.add_argument("--out", required=True, help="run folder for checkpoints and logs")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch-size", type=int, help="global batch size")
    parser.add_argument("--img-size", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--num-workers", type=int)
    parser.add_argument("--device", help="auto (default), cpu or cuda")
    parser.add_argument("--selection", choices=["carve", "last"], help="model selection without a validation split")
    parser.add_argument("--sync-bn", action="store_true", default=None, help="SyncBatchNorm under torchrun")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    args = parser.parse_args(argv)
    cfg = TrainConfig.from_params(
        data=args.data,
        model=args.model,
        out=args.out,
        epochs=args.epochs,
        batch_size=args.batch_size,
        img_size=args.img_size,
        seed=args.seed,
        num_workers=args.num_workers,
        device=args.device,
        selection=args.selection,
        sync_bn=args.sync_bn,
    )
    try:
        train(cfg, resume=args.resume)
    except FloatingPointError as err:
        raise SystemExit(f"error: {err}") from err
    return 0


if __name__ == "__main__":
    raise SystemExit(run(main))
