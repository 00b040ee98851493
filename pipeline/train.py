"""Train one model on one prepared dataset with the paper's recipe.

    python -m pipeline.train --data data/prepared/synthetic --model dyglnet --out runs/synthetic/dyglnet/seed42
    torchrun --nproc_per_node=N -m pipeline.train ...      # DistributedDataParallel, same arguments

``--model`` is a ``models:`` key of params.yaml (the run's name; its entry may name another registered
builder and override the recipe) or the name of any registered model.

Budget: ``train.steps`` optimiser steps when set (the epochs are the fewest whole epochs of this training
split and batch that make at least that many steps), else ``train.epochs``.

Recipe (defaults from the ``train:`` section of params.yaml): AdamW (lr 1e-3, betas 0.9/0.999,
weight decay 3e-5); per-step schedule with linear warm-up over the first ``warmup_epochs`` (scaled by
epochs/130 for shorter runs) then polynomial decay (power 0.9) to zero at the end of the last epoch;
gradient clipping at global norm 1.0; loss 0.5 BCE-with-logits + 0.5 batch-level soft Dice
(segmentation_models_pytorch's DiceLoss); with ``amp``, fp16 autocast with a GradScaler on CUDA and bf16
autocast on a CPU with native bf16 (fp32 otherwise); AdamW's fused kernel.
``--batch-size`` is the global batch: under torchrun each of N processes gets batch/N.

Outputs in ``--out``:
  best.pt        the model to evaluate: fp32 weights of the epoch with the best validation Dice (of the
                 last epoch without a validation split), the config, the epoch
  resume.pt      the full training state, every ``checkpoint_every`` epochs while the run is unfinished;
                 deleted when it finishes
  log.csv        one row per epoch (Dice in percent)
  train.json     the summary (Dice in percent, optimiser steps made and the budget asked for, the recipe,
                 device, time, images/s; ``weights``: the
                 pretrained weights each backbone started from, empty when trained from scratch; ``resumed``:
                 the interruptions of a run that continued from resume.pt, with the epochs each lost)
  progress.json  while the run is unfinished: its epoch, seconds and validation Dice (engine.progress)

Preemption: SIGTERM or SIGUSR2 ends the run after the epoch in progress, with resume.pt saved (exit status
128 + the signal's number). Run the same command again: it continues from resume.pt when that was saved with
the same data, model and recipe, and otherwise sets it aside (resume.pt.stale) and starts from scratch.
``--resume`` insists on continuing: a missing or different resume.pt is then an error.
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.cli import run
from core.errors import UserError
from engine.distributed import all_reduce, world_size
from engine.params import TrainConfig, load_params
from engine.progress import LOG_COLUMNS, Stopped, write_log  # noqa: F401 - LOG_COLUMNS: log.csv's columns

if TYPE_CHECKING:
    import torch

# torch, albumentations and the models are imported inside the functions that use them, so that
# `--help` and argument errors answer at once instead of after seconds of imports.

# Steps between host syncs (non-finite check, progress) per device type; 1 elsewhere. A sync stalls
# CUDA's queue of kernels; on the CPU it costs nothing.
HOST_SYNC_EVERY = {"cuda": 50}


class NonFiniteError(UserError, FloatingPointError):
    """Training diverged: a loss, a validation metric or a weight became NaN or infinite."""


def check_prepared(data: Path) -> dict:
    """The split of a prepared folder; a UserError when it is not one."""
    for name in ("split.json", "ids.json", "images.npy", "masks.npy"):
        if not (data / name).is_file():
            raise UserError(
                f"--data {data}: not a prepared dataset folder (no {name}); make one with python -m pipeline.prepare"
            )
    try:
        return json.loads((data / "split.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise UserError(f"{data / 'split.json'}: unreadable: {err}") from err


# ----------------------------------------------------------------------------------------------
# Data, validation, one epoch
# ----------------------------------------------------------------------------------------------


def make_loaders(cfg: TrainConfig, split: dict, rank: int, world: int, device: torch.device):
    """Training loader (distributed sampler, per-sample augmentation seeds) and validation loader."""
    import torch
    from torch.utils.data import DataLoader, DistributedSampler

    from datasets.splits import resolve_selection
    from datasets.torch_data import AugmentationSeeds, SegmentationArrays, build_transforms, seed_worker

    train_ids, val_ids = resolve_selection(split, cfg.selection, cfg.seed)
    train_set = SegmentationArrays(cfg.data, train_ids, build_transforms(cfg.augment, cfg.img_size, True, cfg.seed))
    val_set = SegmentationArrays(cfg.data, val_ids, build_transforms(cfg.augment, cfg.img_size, train=False))
    if cfg.batch_size % world:
        raise UserError(f"--batch-size {cfg.batch_size} is not divisible by {world} processes")
    if len(train_set) < cfg.batch_size:
        raise UserError(
            f"--data {cfg.data}: {len(train_set)} training images, fewer than one batch of {cfg.batch_size}"
        )
    # The same sampler for one process and for N: with a fixed global batch, N processes see exactly
    # the images one process sees in each step.
    shuffle = DistributedSampler(train_set, num_replicas=world, rank=rank, shuffle=True, seed=cfg.seed, drop_last=True)
    sampler = AugmentationSeeds(shuffle, cfg.seed)
    workers = cfg.num_workers
    common = dict(
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,  # no worker start-up per epoch
        prefetch_factor=4 if workers > 0 else None,
        worker_init_fn=seed_worker,
    )
    train_loader = DataLoader(
        train_set,
        batch_size=cfg.batch_size // world,
        sampler=sampler,
        drop_last=True,  # a batch of 1 breaks BatchNorm
        generator=torch.Generator().manual_seed(cfg.seed),  # DataLoader draws seeds: never from the global RNG
        **common,
    )
    val_loader = DataLoader(
        val_set, batch_size=cfg.batch_size, shuffle=False, generator=torch.Generator().manual_seed(cfg.seed), **common
    )
    return train_loader, val_loader, sampler


def dice_sum(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Sum over the batch of per-image Dice at threshold 0.5 (as ``engine.metrics``: 1 when prediction
    and target are both empty), computed on the device without a host sync."""
    import torch

    from engine.metrics import binarize_logits, confusion_counts

    c = confusion_counts(binarize_logits(logits), masks > 0.5)
    num, den = 2 * c["tp"], 2 * c["tp"] + c["fp"] + c["fn"]
    return torch.where(den > 0, num / den.clamp_min(1), torch.ones_like(den)).sum()


def validate(model, loader, criterion, device, memory_format, amp_dtype) -> tuple[float | None, float | None]:
    """(mean per-image Dice in percent, mean loss) over a loader, with the training's precision; (None, None)
    when it is empty."""
    import torch

    if len(loader.dataset) == 0:
        return None, None
    model.eval()
    totals = torch.zeros(2, dtype=torch.float64, device=device)  # loss sum, Dice sum
    n = 0
    with torch.inference_mode(), torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        for images, masks in loader:
            images = images.to(device, non_blocking=True, memory_format=memory_format)
            masks = masks.to(device, non_blocking=True)
            logits = model(images)
            totals += torch.stack([criterion(logits, masks).double() * len(images), dice_sum(logits, masks)])
            n += len(images)
    model.train()
    loss_sum, dice = totals.tolist()  # the one host sync of the validation
    return 100.0 * dice / n, loss_sum / n


def train_one_epoch(s: Session, epoch: int, bar) -> dict:
    """One pass over the training loader; returns its loss, Dice (percent), images and steps.

    The loss and Dice are summed on the device; the host reads them (and whether a loss was non-finite)
    every ``HOST_SYNC_EVERY`` steps (every step on the CPU, every 50 on CUDA) and at the end of the epoch.
    """
    import torch

    device, loader, scheduler, scaler = s.device, s.train_loader, s.scheduler, s.scaler
    check_every = HOST_SYNC_EVERY.get(device.type, 1)
    world = world_size()
    totals = torch.zeros(2, dtype=torch.float64, device=device)  # loss sum, Dice sum (all processes: reduced)
    seen = 0  # images, all processes (each process gets the same number of full batches)
    first_bad = torch.full((), -1, dtype=torch.int64, device=device)  # first step with a non-finite loss
    s.net.train()
    for step, (images, masks) in enumerate(loader):
        images = images.to(device, non_blocking=True, memory_format=s.memory_format)
        masks = masks.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=s.amp_dtype, enabled=s.amp_dtype is not None):
            logits = s.net(images)
            loss = s.criterion(logits, masks)
        if check_every == 1 and not bool(all_reduce(torch.isfinite(loss.detach()).int(), "min")):
            # Where reading the loss costs nothing, stop before a NaN reaches backward (on the CPU,
            # grid_sample's backward crashes the process on NaN sampling positions).
            raise NonFiniteError(f"non-finite training loss at epoch {epoch + 1}, step {step + 1}")
        s.optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(s.optimizer)
        torch.nn.utils.clip_grad_norm_(s.model.parameters(), s.cfg.grad_clip)
        scaler.step(s.optimizer)
        scaler.update()
        scheduler.step()

        loss = loss.detach()
        first_bad = torch.where((first_bad < 0) & ~torch.isfinite(loss), step, first_bad)
        totals += torch.stack([loss.double() * len(images), dice_sum(logits.detach(), masks)])
        seen += len(images) * world
        if (step + 1) % check_every == 0 or step + 1 == len(loader):
            # one host sync: the sums over all processes, and the first bad step of any (len(loader): none)
            bad_step = all_reduce(torch.where(first_bad < 0, len(loader), first_bad), "min").double()
            loss_sum, dice, bad = torch.cat([all_reduce(totals), bad_step[None]]).tolist()
            if bad < len(loader):
                bad = int(bad)
                raise NonFiniteError(f"non-finite training loss at epoch {epoch + 1}, step {bad + 1}")
            bar.set_postfix(
                loss=f"{loss_sum / seen:.4f}", dice=f"{100 * dice / seen:.2f}%", lr=f"{scheduler.get_last_lr()[0]:.2e}"
            )
        bar.update()
    return {"train_loss": loss_sum / seen, "train_dice": 100.0 * dice / seen, "images": int(seen), "steps": len(loader)}


# ----------------------------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------------------------


def divergence(model, val_dice, val_loss, epoch: int) -> str | None:
    """Why the weights after ``epoch`` cannot be kept (non-finite validation loss, Dice or weights), else None."""
    from engine.checkpoint import non_finite_tensors

    bad = non_finite_tensors(model.state_dict())
    if val_loss is not None and not math.isfinite(val_loss):
        return f"non-finite validation loss after epoch {epoch + 1}"
    if val_dice is not None and not math.isfinite(val_dice):
        return f"non-finite validation Dice after epoch {epoch + 1}"
    if bad:
        return f"non-finite weights after epoch {epoch + 1} (e.g. {bad[0]})"
    return None


def train(cfg: TrainConfig, resume: bool = False) -> dict:
    """Run, or continue, training; returns the summary written to ``train.json``.

    Without ``resume`` an existing ``OUT/resume.pt`` saved with the same settings is continued (and a
    different one set aside); with ``resume`` it must exist and match. SIGTERM or SIGUSR2 ends the run after
    the epoch in progress with resume.pt saved: :class:`engine.progress.Stopped`.
    """
    from engine.progress import StopSignals

    with StopSignals() as stop:
        return _train(cfg, resume, stop)


@dataclass
class Session:
    """Everything one training run works with once it is set up (:func:`set_up`)."""

    cfg: TrainConfig  # with the epochs of a step budget resolved
    out: Path
    rank: int
    world: int
    device: Any
    amp_dtype: Any  # torch.float16 / torch.bfloat16 under autocast, None for fp32
    precision: str  # "fp16-amp", "bf16-amp" or "fp32", as train.json records it
    memory_format: Any
    train_loader: Any
    val_loader: Any
    sampler: Any
    model: Any  # what is saved and validated
    net: Any  # what the training step calls: the model, wrapped by DDP and torch.compile where asked
    criterion: Any
    optimizer: Any
    scheduler: Any
    scaler: Any
    fingerprint: dict  # what a resume.pt must have been saved with
    weights: dict  # what the backbones started from
    resuming: bool

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def no_val(self) -> bool:
        return len(self.val_loader.dataset) == 0


def set_up(cfg: TrainConfig, resume: bool) -> Session:
    """Check the data and the model, build loaders, model and optimiser; only then open the run folder."""
    import torch
    import torch.nn as nn
    from torch.nn.parallel import DistributedDataParallel

    from engine import distributed as dist
    from engine import resume as rs
    from engine.factory import check_input_size, check_model_runs, model_from_entry
    from engine.recipe import epochs_for_steps, optimisation
    from engine.runtime import autocast_dtype, seed_everything
    from models.pretrained import loaded_weights

    split = check_prepared(Path(cfg.data))
    check_input_size(cfg.builder, cfg.img_size)
    rank, world, device = dist.init_distributed(cfg.device)
    amp_dtype = autocast_dtype(device, cfg.amp)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input sizes: pick the fastest convolution once
    seed_everything(cfg.seed)
    train_loader, val_loader, sampler = make_loaders(cfg, split, rank, world, device)
    if cfg.steps is not None:  # a budget in optimiser steps: the epochs follow from this split and batch
        cfg = cfg.model_copy(update={"epochs": epochs_for_steps(cfg.steps, len(train_loader))})
    model = model_from_entry(cfg.model, cfg.builder, cfg.model_kwargs).to(device)
    check_model_runs(model, cfg.builder, cfg.img_size, device)
    weights = loaded_weights(model)  # what the backbones started from; before any wrapping

    # Every check has passed: only now is the run folder touched
    precision = {torch.float16: "fp16-amp", torch.bfloat16: "bf16-amp"}.get(amp_dtype, "fp32")
    fingerprint = rs.run_fingerprint(cfg, world, precision)
    resuming = rs.open_run_folder(Path(cfg.out), fingerprint, resume, rank == 0)

    memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    if cfg.sync_bn and world > 1:
        if device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        elif rank == 0:
            print("sync_bn: PyTorch's SyncBatchNorm needs CUDA; keeping per-process BatchNorm on the CPU", flush=True)
    net = model
    if world > 1:
        net = DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:
        net = torch.compile(net)
    criterion, optimizer, scheduler, scaler = optimisation(model, cfg, len(train_loader), device, amp_dtype)
    return Session(
        cfg, Path(cfg.out), rank, world, device, amp_dtype, precision, memory_format,
        train_loader, val_loader, sampler, model, net, criterion, optimizer, scheduler, scaler,
        fingerprint, weights, resuming,
    )  # fmt: skip


def restore_state(s: Session) -> tuple[Any, list[dict]]:
    """The run state to start from: resume.pt's when the run continues (best.pt rewritten from it), else a new one;
    and the record of the interruptions."""
    from engine import progress as pg
    from engine import resume as rs
    from engine.checkpoint import save_best

    if not s.resuming:
        return rs.RunState(), []
    state = rs.restore(s.out / "resume.pt", s.rank, s.model, s.optimizer, s.scheduler, s.scaler)
    resumed: list[dict] = []
    if s.is_main and state.best["epoch"]:  # `dvc repro` deletes best.pt before rerunning a stage, and a
        # killed run may have written a later one: best.pt is made the best of the epochs resume.pt has done
        save_best(s.out / "best.pt", state.best_weights, s.cfg, state.best)
    if s.is_main:
        resumed = pg.resumption(s.out, state.log)
        if resumed[-1]["lost_epochs"]:
            print(f"lost since the checkpoint: {resumed[-1]['lost_epochs']} epoch(s) trained", flush=True)
        pg.write_progress(s.out, s.cfg.epochs, state.log, state.saved_epoch, resumed)
    return state, resumed


def run_epoch(s: Session, state, epoch: int) -> tuple[dict, float | None, float | None]:
    """Train one epoch, then validate and check for divergence before anything of it is saved; returns the
    epoch's training statistics (with its seconds) and the validation Dice and loss."""
    from tqdm import tqdm

    from engine import distributed as dist
    from engine import resume as rs
    from engine.runtime import interactive

    t0 = time.perf_counter()
    s.sampler.set_epoch(epoch)  # data order and augmentation: functions of (seed, epoch) only
    disable = not (s.is_main and interactive())
    bar = tqdm(total=len(s.train_loader), desc=f"epoch {epoch + 1}/{s.cfg.epochs}", leave=False, disable=disable)
    try:
        stats = train_one_epoch(s, epoch, bar)
    except NonFiniteError as err:
        raise NonFiniteError(f"{err}; {rs.kept_files(s.out, state)}") from None
    finally:
        bar.close()
    stats.update(t0=t0, train_seconds=time.perf_counter() - t0)
    val_dice = val_loss = problem = None
    if s.is_main:
        val_dice, val_loss = validate(s.model, s.val_loader, s.criterion, s.device, s.memory_format, s.amp_dtype)
        problem = divergence(s.model, val_dice, val_loss, epoch)
    problem = dist.from_rank0(problem)
    if problem:
        raise NonFiniteError(f"{problem}: training diverged (lower train.lr?); {rs.kept_files(s.out, state)}")
    return stats, val_dice, val_loss


def record_epoch(
    s: Session, state, epoch: int, stats: dict, validation: tuple, *, save_resume: bool, rngs, resumed: list[dict]
) -> None:
    """On the main process: keep best.pt, append the log row, save resume.pt when due, write log.csv and
    progress.json, print the epoch's line."""
    from engine import progress as pg
    from engine import resume as rs
    from engine.checkpoint import model_state, save_best

    val_dice, val_loss = validation
    improved = s.no_val or val_dice > state.best["val_dice"]  # without validation the last epoch is kept
    if improved:
        state.best = {"val_dice": -math.inf if s.no_val else val_dice, "epoch": epoch + 1}
        state.best_weights = model_state(s.model)
        save_best(s.out / "best.pt", state.best_weights, s.cfg, state.best)
    row = {
        "epoch": epoch + 1,
        "lr": s.optimizer.param_groups[0]["lr"],
        "train_loss": round(stats["train_loss"], 6),
        "train_dice": round(stats["train_dice"], 4),
        "val_dice": None if s.no_val else round(val_dice, 4),
        "val_loss": None if s.no_val else round(val_loss, 6),
        "seconds": round(time.perf_counter() - stats["t0"], 3),
    }
    state.log.append(row)
    if save_resume:
        objects = rs.TrainingObjects(s.model, s.optimizer, s.scheduler, s.scaler)
        rs.save_resume(s.out / "resume.pt", state, objects, improved=improved, rngs=rngs, cfg=s.cfg,
                       fingerprint=s.fingerprint)  # fmt: skip
    write_log(s.out / "log.csv", state.log)
    pg.write_progress(s.out, s.cfg.epochs, state.log, state.saved_epoch, resumed)
    val_text = "" if s.no_val else f" val_dice {val_dice:.2f}% val_loss {val_loss:.4f}"
    print(
        f"epoch {epoch + 1}/{s.cfg.epochs} lr {row['lr']:.2e} loss {row['train_loss']:.4f} "
        f"dice {row['train_dice']:.2f}%{val_text} {row['seconds']:.1f}s{' *' if improved else ''}",
        flush=True,
    )


def _train(cfg: TrainConfig, resume: bool, stop) -> dict:
    import torch

    from core.fsutil import atomic_write_json
    from engine import distributed as dist
    from engine import progress as pg
    from engine import resume as rs
    from engine.runtime import device_name
    from engine.threads import ThreadBudget

    s = set_up(cfg, resume)
    cfg = s.cfg
    state, resumed = restore_state(s)
    threads = ThreadBudget()  # pipeline.grid may lend this job the cores of a finished one: taken between epochs
    for epoch in range(state.epochs_done, cfg.epochs):
        threads.follow(epoch)
        stats, val_dice, val_loss = run_epoch(s, state, epoch)
        state.epochs_done = epoch + 1
        for key in ("steps", "images", "train_seconds"):
            state.totals[key] += stats[key]
        stopping = bool(all_reduce(torch.tensor(int(stop.received is not None), device=s.device)))  # any process
        save_resume = ((epoch + 1) % cfg.checkpoint_every == 0 or stopping) and epoch + 1 < cfg.epochs
        rngs = dist.gather_rng_states(s.world) if save_resume else None  # a collective: every process
        if s.is_main:
            validation = (val_dice, val_loss)
            record_epoch(s, state, epoch, stats, validation, save_resume=save_resume, rngs=rngs, resumed=resumed)
        elif save_resume:
            state.saved_epoch = epoch + 1
        dist.barrier()
        if save_resume and stopping:  # asked to stop (SIGTERM, SIGUSR2), resume.pt saved: end here
            raise Stopped(stop.received or signal.SIGTERM, epoch + 1, cfg.epochs)

    run = rs.RunRecord(device=device_name(s.device), world=s.world, precision=s.precision, weights=s.weights)
    summary = rs.run_summary(cfg, state, run, no_val=s.no_val, resumed=resumed)
    summary.update(threads.record())
    if s.is_main:
        atomic_write_json(s.out / "train.json", summary)
        (s.out / "resume.pt").unlink(missing_ok=True)  # finished: best.pt, log.csv and train.json are the run
        pg.remove_progress(s.out)
    dist.shutdown()
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", required=True, help="a prepared dataset folder (python -m pipeline.prepare)")
    parser.add_argument("--model", required=True, help="a models: key of params.yaml or a registered model name")
    parser.add_argument("--out", required=True, help="run folder for checkpoints and logs")
    parser.add_argument("--steps", type=int, help="budget in optimiser steps (the epochs follow from the split)")
    parser.add_argument("--epochs", type=int, help="budget in epochs (instead of train.steps)")
    parser.add_argument("--batch-size", type=int, help="global batch size")
    parser.add_argument("--img-size", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--num-workers", type=int)
    parser.add_argument("--device", help="auto (default), cpu or cuda")
    parser.add_argument("--selection", choices=["carve", "last"], help="model selection without a validation split")
    parser.add_argument("--sync-bn", action="store_true", default=None, help="SyncBatchNorm under torchrun")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, help="torch.compile the model")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, help="NHWC memory format")
    parser.add_argument("--checkpoint-every", type=int, help="epochs between resume checkpoints")
    parser.add_argument(
        "--resume", action="store_true", help="require continuing from OUT/resume.pt (an error if missing or different)"
    )
    args = parser.parse_args(argv)
    cfg = TrainConfig.from_params(
        load_params(),
        data=args.data,
        model=args.model,
        out=args.out,
        steps=args.steps,
        epochs=args.epochs,
        batch_size=args.batch_size,
        img_size=args.img_size,
        seed=args.seed,
        num_workers=args.num_workers,
        device=args.device,
        selection=args.selection,
        sync_bn=args.sync_bn,
        compile=args.compile,
        channels_last=args.channels_last,
        checkpoint_every=args.checkpoint_every,
    )
    try:
        train(cfg, resume=args.resume)
    except Stopped as stopped:
        print(stopped, flush=True)
        return stopped.exit_code
    return 0


if __name__ == "__main__":
    raise SystemExit(run(main))
