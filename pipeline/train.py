"""Train one model on one prepared dataset with the paper's recipe.

    python -m pipeline.train --data data/prepared/synthetic --model dyglnet --out runs/synthetic/dyglnet/seed42
    torchrun --nproc_per_node=N -m pipeline.train ...      # DistributedDataParallel, same arguments

``--model`` is a ``models:`` key of params.yaml (the run's name; its entry may name another registered
builder and override the recipe) or the name of any registered model.

Recipe (defaults from the ``train:`` section of params.yaml): AdamW (lr 1e-3, betas 0.9/0.999,
weight decay 3e-5); per-step schedule with linear warm-up over the first ``warmup_epochs`` (scaled by
epochs/130 for shorter runs) then polynomial decay (power 0.9) to zero at the end of the last epoch;
gradient clipping at global norm 1.0; loss 0.5 BCE-with-logits + 0.5 batch-level soft Dice
(segmentation_models_pytorch's DiceLoss); with ``amp``, fp16 autocast with a GradScaler on CUDA and bf16
autocast on a CPU with native bf16 (fp32 otherwise); AdamW's fused kernel.
``--batch-size`` is the global batch: under torchrun each of N processes gets batch/N.

Outputs in ``--out``:
  best.pt     the model to evaluate: fp32 weights of the epoch with the best validation Dice (of the
              last epoch without a validation split), the config, the epoch
  resume.pt   the full training state, every ``checkpoint_every`` epochs while the run is unfinished;
              deleted when it finishes
  log.csv     one row per epoch (Dice in percent)
  train.json  the summary (Dice in percent, optimiser steps, device, time, images/s)

Preemption: run the same command again. It continues from resume.pt when that was saved with the same
data, model and recipe, and otherwise sets it aside (resume.pt.stale) and starts from scratch.
``--resume`` insists on continuing: a missing or different resume.pt is then an error.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.cli import run
from core.errors import UserError
from engine.checkpoint import CheckpointError

if TYPE_CHECKING:
    import torch

# torch, albumentations and the models are imported inside the functions that use them, so that
# `--help` and argument errors answer at once instead of after seconds of imports.

LOG_COLUMNS = ["epoch", "lr", "train_loss", "train_dice", "val_dice", "val_loss", "seconds"]
RUN_FILES = ("best.pt", "resume.pt", "log.csv", "train.json")  # what a run writes into --out
# Steps between host syncs (non-finite check, progress) per device type; 1 elsewhere. A sync stalls
# CUDA's queue of kernels; on the CPU it costs nothing.
HOST_SYNC_EVERY = {"cuda": 50}

# Settings that change what a run computes: resuming requires them unchanged. Left out on purpose:
# out, device, compile, channels_last, checkpoint_every and num_workers (each sample's augmentation is
# seeded by (seed, epoch, sample), whatever the number of workers).
RECIPE_KEYS = (
    "epochs",
    "batch_size",
    "img_size",
    "seed",
    "lr",
    "betas",
    "weight_decay",
    "warmup_epochs",
    "reference_epochs",
    "poly_power",
    "grad_clip",
    "bce_weight",
    "dice_weight",
    "dice_smooth",
    "selection",
    "sync_bn",
    "augment",
)


class NonFiniteError(UserError, FloatingPointError):
    """Training diverged: a loss, a validation metric or a weight became NaN or infinite."""


@dataclass
class TrainConfig:
    """Everything that determines a training run (saved in every checkpoint)."""

    data: str
    model: str  # the run's name: a `models:` key of params.yaml, or a registered model
    out: str
    builder: str = ""  # the registered model to build; defaults to `model`
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
    amp: bool = True  # fp16 autocast on CUDA, bf16 on CPUs with native bf16 (see runtime.autocast_dtype)
    bce_weight: float = 0.5
    dice_weight: float = 0.5
    dice_smooth: float = 1.0
    num_workers: int = 2
    selection: str = "last"  # model selection when the dataset has no validation split: last | carve
    sync_bn: bool = False
    device: str = "auto"
    compile: bool = False  # torch.compile the model for training
    channels_last: bool = False  # NHWC memory format for the model and its inputs
    checkpoint_every: int = 5  # epochs between resume checkpoints
    model_kwargs: dict = field(default_factory=dict)
    augment: dict = field(default_factory=dict)

    def __post_init__(self):
        self.builder = self.builder or self.model
        self.betas = tuple(self.betas)

    @classmethod
    def from_params(cls, **overrides) -> TrainConfig:
        """Defaults <- params.yaml ``train:`` <- ``models.<model>:`` <- explicit overrides (None = not given)."""
        from pydantic import ValidationError

        from engine.params import TrainParams, describe, load_params

        params = load_params()
        spec = params.model_spec(overrides["model"])  # UnknownModelError for a name nobody registered
        given = {k: v for k, v in overrides.items() if v is not None}
        recipe = {**spec.recipe.model_dump(), **{k: v for k, v in given.items() if k in TrainParams.model_fields}}
        try:
            TrainParams(**recipe)
        except ValidationError as err:
            raise UserError(f"invalid training setting: {describe(err)}") from err
        values = {
            **recipe,
            **given,
            "builder": spec.builder,
            "model_kwargs": spec.model_kwargs,
            "augment": params.augment.model_dump(),
        }
        return cls(**{k: v for k, v in values.items() if k in cls.__dataclass_fields__})


# ----------------------------------------------------------------------------------------------
# Checks before any work: the data folder, the input size, the settings a resume.pt was saved with
# ----------------------------------------------------------------------------------------------


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


def check_img_size(cfg: TrainConfig) -> None:
    """The input sizes the registry records for the model (read from the source; nothing is built)."""
    from models import model_info

    info = model_info(cfg.builder)
    if info.fixed_input_size and cfg.img_size != info.fixed_input_size:
        raise UserError(
            f"--img-size {cfg.img_size}: {cfg.builder} accepts only {info.fixed_input_size} x "
            f"{info.fixed_input_size} inputs"
        )
    if cfg.img_size < info.min_input_size:
        raise UserError(f"--img-size {cfg.img_size}: {cfg.builder} needs inputs of at least {info.min_input_size} px")


def check_model_runs(model: torch.nn.Module, cfg: TrainConfig, device: torch.device) -> None:
    """The model's size divisor (``size_divisor``), then a forward pass of one blank image at the training
    size in eval mode (no RNG drawn, no statistics updated): a size the model cannot take is a one-line
    error before any training, whatever the model."""
    import torch

    divisor = getattr(model, "size_divisor", None)
    if divisor and cfg.img_size % divisor:
        valid = ", ".join(str(divisor * k) for k in (cfg.img_size // divisor, cfg.img_size // divisor + 1) if k)
        raise UserError(
            f"--img-size {cfg.img_size}: {cfg.builder} needs a size divisible by {divisor} (nearest: {valid})"
        )
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros(1, 3, cfg.img_size, cfg.img_size, device=device))
    except torch.cuda.OutOfMemoryError:
        raise
    except (ValueError, RuntimeError) as err:
        detail = " ".join(str(err).split())[:300]
        raise UserError(f"--img-size {cfg.img_size}: {cfg.builder} cannot run at this size: {detail}") from err
    finally:
        model.train(was_training)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (1, 1, cfg.img_size, cfg.img_size):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise UserError(
            f"--img-size {cfg.img_size}: {cfg.builder} returns {shape} for a 1 x 3 x {cfg.img_size} x "
            f"{cfg.img_size} input; training needs 1 channel of logits at the input size"
        )


def data_digest(data: Path) -> str:
    """sha256 (first 16 hex digits) of a prepared folder's split.json and manifest.json: which images,
    prepared how, in which split."""
    digest = hashlib.sha256()
    for name in ("split.json", "manifest.json"):
        path = data / name
        digest.update(name.encode() + b"\0" + (path.read_bytes() if path.is_file() else b"<missing>") + b"\0")
    return digest.hexdigest()[:16]


def run_fingerprint(cfg: TrainConfig, world: int, precision: str) -> dict[str, Any]:
    """What a resume.pt must have been saved with for a run to continue from it."""
    recipe = json.loads(json.dumps({k: getattr(cfg, k) for k in RECIPE_KEYS}))  # tuples -> lists, as saved
    return {
        "data": data_digest(Path(cfg.data)),
        "model": cfg.builder,
        "model_kwargs": json.loads(json.dumps(cfg.model_kwargs, sort_keys=True)),
        **recipe,
        "processes": world,
        "precision": precision,
    }


def fingerprint_differences(saved: dict, now: dict) -> list[str]:
    """``["img_size 32, now 64", ...]`` for every setting that differs."""
    return [f"{key} {saved.get(key, 'unrecorded')}, now {now[key]}" for key in now if saved.get(key) != now[key]]


# ----------------------------------------------------------------------------------------------
# Distributed helpers (a single process is world size 1)
# ----------------------------------------------------------------------------------------------


def init_distributed(device_name: str) -> tuple[int, int, torch.device]:
    """Join the torchrun process group if launched by torchrun; return (rank, world size, device)."""
    import torch
    import torch.distributed as dist

    from engine.runtime import resolve_device

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


def distributed() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def all_reduce(tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
    """A reduced copy over all processes (the tensor itself without a process group)."""
    import torch.distributed as dist

    if not distributed():
        return tensor
    tensor = tensor.clone()
    dist.all_reduce(tensor, op={"sum": dist.ReduceOp.SUM, "min": dist.ReduceOp.MIN}[op])
    return tensor


def from_rank0(obj: Any) -> Any:
    """Rank 0's ``obj`` on every process."""
    import torch.distributed as dist

    if not distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_rng_states(world: int):
    """This process's RNG states, or every process's (a list) under torchrun."""
    import torch.distributed as dist

    from engine.runtime import rng_state

    state = rng_state()
    if world == 1:
        return state
    states = [None] * world
    dist.all_gather_object(states, state)
    return states


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


def train_one_epoch(
    net, model, loader, criterion, optimizer, scheduler, scaler, amp_dtype, cfg, epoch, device, bar
) -> dict:
    """One pass over the training loader; returns its loss, Dice (percent), images and steps.

    The loss and Dice are summed on the device; the host reads them (and whether a loss was non-finite)
    every ``HOST_SYNC_EVERY`` steps (every step on the CPU, every 50 on CUDA) and at the end of the epoch.
    """
    import torch

    memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
    check_every = HOST_SYNC_EVERY.get(device.type, 1)
    world = torch.distributed.get_world_size() if distributed() else 1
    totals = torch.zeros(2, dtype=torch.float64, device=device)  # loss sum, Dice sum (all processes: reduced)
    seen = 0  # images, all processes (each process gets the same number of full batches)
    first_bad = torch.full((), -1, dtype=torch.int64, device=device)  # first step with a non-finite loss
    net.train()
    for step, (images, masks) in enumerate(loader):
        images = images.to(device, non_blocking=True, memory_format=memory_format)
        masks = masks.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            logits = net(images)
            loss = criterion(logits, masks)
        if check_every == 1 and not bool(all_reduce(torch.isfinite(loss.detach()).int(), "min")):
            # Where reading the loss costs nothing, stop before a NaN reaches backward (on the CPU,
            # grid_sample's backward crashes the process on NaN sampling positions).
            raise NonFiniteError(f"non-finite training loss at epoch {epoch + 1}, step {step + 1}")
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        scaler.step(optimizer)
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
# Files of the run folder
# ----------------------------------------------------------------------------------------------


def remove_stale_temporaries(out: Path) -> list[str]:
    """Delete the temporary files an interrupted atomic write of ours left in ``out`` (``.best.pt.*.tmp``...)."""
    removed = []
    for name in RUN_FILES:
        for tmp in out.glob(f".{name}.*tmp"):
            tmp.unlink(missing_ok=True)
            removed.append(tmp.name)
    return removed


def decide_resume(out: Path, fingerprint: dict, required: bool) -> tuple[bool, str]:
    """(continue from OUT/resume.pt?, the line to print). A missing, unreadable or different resume.pt is
    a CheckpointError when ``required`` (--resume); otherwise a different or unreadable one is set aside
    as ``resume.pt.stale`` and the run starts from scratch."""
    from engine.checkpoint import load_checkpoint

    path = out / "resume.pt"
    if not path.exists():
        if required:
            raise CheckpointError(
                f"--resume: {path} does not exist (the run never saved one, or it finished and deleted it); "
                "run without --resume to start from scratch"
            )
        return False, f"starting {out} from scratch"
    try:
        state = load_checkpoint(path, kind="resume")
        diffs = fingerprint_differences(state.get("fingerprint") or {}, fingerprint)
        problem = f"{path} was saved with {'; '.join(diffs)}" if diffs else ""
    except CheckpointError as err:
        problem = str(err)
    if problem and required:
        raise CheckpointError(problem + "; run without --resume to set it aside and start from scratch")
    if problem:
        path.replace(path.with_name("resume.pt.stale"))
        return False, f"{problem}: set aside as resume.pt.stale, starting {out} from scratch"
    return True, f"resuming {out} from resume.pt after epoch {state['epoch']} of {fingerprint['epochs']}"


def kept_files(out: Path, resume_epoch: int | None, best_epoch: int | None) -> str:
    """What of this run is still on disk, for an error message."""
    kept = []
    if resume_epoch:
        kept.append(f"{out / 'resume.pt'} holds the training state after epoch {resume_epoch}")
    if best_epoch:
        kept.append(f"{out / 'best.pt'} the weights of epoch {best_epoch}")
    return "; ".join(kept) if kept else "no checkpoint of this run was written"


def save_best(path: Path, weights: dict, cfg: TrainConfig, best: dict) -> None:
    """best.pt: what evaluation and prediction need, and nothing else."""
    from engine.checkpoint import save_checkpoint

    best_dice = None if best["val_dice"] == -math.inf else round(best["val_dice"], 4)  # percent
    state = {"model": weights, "config": asdict(cfg), "epoch": best["epoch"], "best_val_dice": best_dice}
    save_checkpoint(path, state, kind="model")


def write_log(path: Path, rows: list[dict]) -> None:
    from core.fsutil import atomic_write_bytes

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=LOG_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(path, buf.getvalue().encode())


# ----------------------------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------------------------


def train(cfg: TrainConfig, resume: bool = False) -> dict:
    """Run, or continue, training; returns the summary written to ``train.json``.

    Without ``resume`` an existing ``OUT/resume.pt`` saved with the same settings is continued (and a
    different one set aside); with ``resume`` it must exist and match.
    """
    import torch
    import torch.nn as nn
    from torch.nn.parallel import DistributedDataParallel
    from tqdm import tqdm

    from core.fsutil import atomic_write_json
    from engine.checkpoint import load_checkpoint, model_state, non_finite_tensors, save_checkpoint
    from engine.params import create_entry_model
    from engine.recipe import BceDiceLoss, warmup_poly_factor
    from engine.runtime import autocast_dtype, device_name, interactive, seed_everything, set_rng_state

    out = Path(cfg.out)
    split = check_prepared(Path(cfg.data))
    check_img_size(cfg)
    rank, world, device = init_distributed(cfg.device)
    is_main = rank == 0
    amp_dtype = autocast_dtype(device, cfg.amp)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input sizes: pick the fastest convolution once

    seed_everything(cfg.seed)
    train_loader, val_loader, sampler = make_loaders(cfg, split, rank, world, device)
    model = create_entry_model(cfg.model, cfg.builder, cfg.model_kwargs).to(device)
    check_model_runs(model, cfg, device)

    # Every check has passed: only now is the run folder touched
    precision = {torch.float16: "fp16-amp", torch.bfloat16: "bf16-amp"}.get(amp_dtype, "fp32")
    fingerprint = run_fingerprint(cfg, world, precision)
    decision = None
    if is_main:
        out.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(out)
        try:
            resuming, message = decide_resume(out, fingerprint, resume)
            decision = (resuming, None)
        except CheckpointError as err:
            decision = (False, str(err))
        if decision[1] is None:
            if not resuming:  # files of an earlier run in this folder would describe another run
                for name in ("best.pt", "log.csv", "train.json"):
                    (out / name).unlink(missing_ok=True)
            print(message, flush=True)
    resuming, refusal = from_rank0(decision)  # every process takes rank 0's decision
    if refusal:
        raise CheckpointError(refusal)

    memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    if cfg.sync_bn and world > 1:
        if device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        elif is_main:
            print("sync_bn: PyTorch's SyncBatchNorm needs CUDA; keeping per-process BatchNorm on the CPU", flush=True)
    net = model  # what the training step calls; `model` is what is saved and validated
    if world > 1:
        net = DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:
        net = torch.compile(net)

    criterion = BceDiceLoss(cfg.bce_weight, cfg.dice_weight, cfg.dice_smooth)
    optimizer = torch.optim.AdamW(
        model.parameters(),
        lr=cfg.lr,
        betas=cfg.betas,
        weight_decay=cfg.weight_decay,
        fused=True,  # one kernel for all parameters; on CUDA the GradScaler step then needs no host sync
    )
    steps_per_epoch = len(train_loader)
    total_steps = cfg.epochs * steps_per_epoch
    warmup_steps = round(cfg.warmup_epochs * min(1.0, cfg.epochs / cfg.reference_epochs) * steps_per_epoch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_poly_factor(step, total_steps, warmup_steps, cfg.poly_power)
    )
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)

    # Bookkeeping that resume.pt carries across a preemption
    start_epoch, log_rows = 0, []
    best = {"val_dice": -math.inf, "epoch": None}  # epoch: 1-based, of the weights in best.pt
    best_weights = None  # a CPU copy of best.pt's weights (resume.pt carries them)
    totals = {"steps": 0, "images": 0, "train_seconds": 0.0}
    resume_epoch = None  # epochs done when resume.pt was last written by this run
    if resuming:
        state = load_checkpoint(out / "resume.pt", map_location="cpu", kind="resume")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        start_epoch = resume_epoch = state["epoch"]
        log_rows, best, totals = list(state["log"]), dict(state["best"]), dict(state["totals"])
        set_rng_state(state["rng"][rank] if isinstance(state["rng"], list) else state["rng"])
        if best["epoch"]:
            best_weights = state["model"] if state["best_model"] is None else state["best_model"]
            if is_main:  # `dvc repro` deletes best.pt before rerunning a stage; a killed run may have
                # written a later one: best.pt is made the best of the epochs resume.pt has done
                save_best(out / "best.pt", best_weights, cfg, best)

    no_val = len(val_loader.dataset) == 0
    bar_enabled = is_main and interactive()
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.perf_counter()
        sampler.set_epoch(epoch)  # data order and augmentation: functions of (seed, epoch) only
        bar = tqdm(total=steps_per_epoch, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False, disable=not bar_enabled)
        try:
            stats = train_one_epoch(
                net, model, train_loader, criterion, optimizer, scheduler, scaler, amp_dtype, cfg, epoch, device, bar
            )
        except NonFiniteError as err:
            raise NonFiniteError(f"{err}; {kept_files(out, resume_epoch, best['epoch'])}") from None
        finally:
            bar.close()
        train_seconds = time.perf_counter() - t0

        # Validation and the divergence check, before anything of this epoch is saved
        problem = None
        if is_main:
            val_dice, val_loss = validate(model, val_loader, criterion, device, memory_format, amp_dtype)
            bad = non_finite_tensors(model.state_dict())
            if val_loss is not None and not math.isfinite(val_loss):
                problem = f"non-finite validation loss after epoch {epoch + 1}"
            elif val_dice is not None and not math.isfinite(val_dice):
                problem = f"non-finite validation Dice after epoch {epoch + 1}"
            elif bad:
                problem = f"non-finite weights after epoch {epoch + 1} (e.g. {bad[0]})"
        problem = from_rank0(problem)
        if problem:
            raise NonFiniteError(
                f"{problem}: training diverged (lower train.lr?); {kept_files(out, resume_epoch, best['epoch'])}"
            )

        totals["steps"] += stats["steps"]
        totals["images"] += stats["images"]
        totals["train_seconds"] += train_seconds
        save_resume = (epoch + 1) % cfg.checkpoint_every == 0 and epoch + 1 < cfg.epochs
        rngs = gather_rng_states(world) if save_resume else None  # a collective: every process
        if is_main:
            improved = no_val or val_dice > best["val_dice"]  # without validation the last epoch is kept
            if improved:
                best = {"val_dice": -math.inf if no_val else val_dice, "epoch": epoch + 1}
                best_weights = model_state(model)
                save_best(out / "best.pt", best_weights, cfg, best)
            row = {
                "epoch": epoch + 1,
                "lr": optimizer.param_groups[0]["lr"],
                "train_loss": round(stats["train_loss"], 6),
                "train_dice": round(stats["train_dice"], 4),
                "val_dice": None if no_val else round(val_dice, 4),
                "val_loss": None if no_val else round(val_loss, 6),
                "seconds": round(time.perf_counter() - t0, 3),
            }
            log_rows.append(row)
            if save_resume:
                state = {
                    "model": best_weights if improved else model_state(model),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "scaler": scaler.state_dict(),
                    "epoch": epoch + 1,  # epochs done
                    "best": best,
                    "best_model": None if improved else best_weights,  # None: the same as "model"
                    "totals": totals,
                    "log": log_rows,
                    "rng": rngs,
                    "config": asdict(cfg),
                    "fingerprint": fingerprint,
                }
                save_checkpoint(out / "resume.pt", state, kind="resume")
                resume_epoch = epoch + 1
            write_log(out / "log.csv", log_rows)
            val_text = "" if no_val else f" val_dice {val_dice:.2f}% val_loss {val_loss:.4f}"
            print(
                f"epoch {epoch + 1}/{cfg.epochs} lr {row['lr']:.2e} loss {row['train_loss']:.4f} "
                f"dice {row['train_dice']:.2f}%{val_text} {row['seconds']:.1f}s{' *' if improved else ''}",
                flush=True,
            )
        elif save_resume:
            resume_epoch = epoch + 1
        if world > 1:
            torch.distributed.barrier()

    summary = {
        "model": cfg.model,
        "builder": cfg.builder,
        "epochs": cfg.epochs,
        "img_size": cfg.img_size,
        "batch_size": cfg.batch_size,
        "selection": "last" if no_val else "best_val_dice",
        "best_val_dice": None if no_val else round(best["val_dice"], 4),  # percent
        "best_epoch": best["epoch"],
        "final_train_loss": log_rows[-1]["train_loss"] if log_rows else None,
        "steps": totals["steps"],
        "seconds": round(sum(r["seconds"] for r in log_rows), 2),
        "images_per_second": round(totals["images"] / totals["train_seconds"], 3) if totals["train_seconds"] else None,
        "device_name": device_name(device),
        "world_size": world,
        "precision": precision,
    }
    if is_main:
        atomic_write_json(out / "train.json", summary)
        (out / "resume.pt").unlink(missing_ok=True)  # finished: best.pt, log.csv and train.json are the run
    if world > 1:
        torch.distributed.destroy_process_group()
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", required=True, help="a prepared dataset folder (python -m pipeline.prepare)")
    parser.add_argument("--model", required=True, help="a models: key of params.yaml or a registered model name")
    parser.add_argument("--out", required=True, help="run folder for checkpoints and logs")
    parser.add_argument("--epochs", type=int)
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
        compile=args.compile,
        channels_last=args.channels_last,
        checkpoint_every=args.checkpoint_every,
    )
    train(cfg, resume=args.resume)
    return 0


if __name__ == "__main__":
    raise SystemExit(run(main))
