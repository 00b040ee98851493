"""The resume protocol of a training run: a preempted run continues bit for bit from ``OUT/resume.pt``; and the
run's summary (``train.json``).

- Before any training, :func:`open_run_folder` decides (on rank 0, for every process) whether to continue: a
  resume.pt saved with the same data, model, recipe, number of processes and precision
  (:func:`run_fingerprint`) is continued; a different or unreadable one is set aside as ``resume.pt.stale``
  (or refused under ``--resume``). Starting afresh removes the files of an earlier run in the folder.
- Every ``checkpoint_every`` epochs the run saves :func:`save_resume`: model, optimiser, scheduler, gradient
  scaler, every process's RNG states and :class:`RunState` (the epoch log, the best epoch and its weights,
  the step/image/time totals).
- :func:`restore` loads it all back; a finished run deletes resume.pt (best.pt, log.csv and train.json are
  the run). :func:`run_summary` is train.json.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.checkpoint import CheckpointError, load_checkpoint, model_state, save_checkpoint
from engine.distributed import from_rank0

if TYPE_CHECKING:
    from engine.params import TrainConfig

RUN_FILES = ("best.pt", "resume.pt", "log.csv", "train.json", "progress.json")  # what a run writes into its folder


@dataclass
class RunState:
    """What resume.pt carries across a preemption besides the training objects."""

    epochs_done: int = 0
    log: list[dict] = field(default_factory=list)
    best: dict = field(default_factory=lambda: {"val_dice": -math.inf, "epoch": None})  # epoch: 1-based
    best_weights: dict | None = None  # a CPU copy of best.pt's weights
    totals: dict = field(default_factory=lambda: {"steps": 0, "images": 0, "train_seconds": 0.0})
    saved_epoch: int | None = None  # epochs done when resume.pt was last written by this run


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
    return {
        "data": data_digest(Path(cfg.data)),
        "model": cfg.builder,
        "model_kwargs": json.loads(json.dumps(cfg.model_kwargs, sort_keys=True)),
        **json.loads(json.dumps(cfg.recipe())),
        "processes": world,
        "precision": precision,
    }


def fingerprint_differences(saved: dict, now: dict) -> list[str]:
    """``["img_size 32, now 64", ...]`` for every setting that differs."""
    return [f"{key} {saved.get(key, 'unrecorded')}, now {now[key]}" for key in now if saved.get(key) != now[key]]


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


def open_run_folder(out: Path, fingerprint: dict, required: bool, is_main: bool) -> bool:
    """Rank 0 creates ``out``, clears interrupted writes and decides whether to continue (a fresh start removes
    an earlier run's files, which would describe another run); every process returns that decision."""
    decision = None
    if is_main:
        out.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(out)
        try:
            resuming, message = decide_resume(out, fingerprint, required)
            decision = (resuming, None)
        except CheckpointError as err:
            decision = (False, str(err))
        if decision[1] is None:
            if not resuming:
                for name in ("best.pt", "log.csv", "train.json", "progress.json"):
                    (out / name).unlink(missing_ok=True)
            print(message, flush=True)
    resuming, refusal = from_rank0(decision)
    if refusal:
        raise CheckpointError(refusal)
    return resuming


def restore(path: Path, rank: int, model, optimizer, scheduler, scaler) -> RunState:
    """Load resume.pt into the training objects and this process's RNG; the progress it carried."""
    from engine.runtime import set_rng_state

    state = load_checkpoint(path, map_location="cpu", kind="resume")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    scaler.load_state_dict(state["scaler"])
    set_rng_state(state["rng"][rank] if isinstance(state["rng"], list) else state["rng"])
    best = dict(state["best"])
    best_weights = None
    if best["epoch"]:
        best_weights = state["model"] if state["best_model"] is None else state["best_model"]
    return RunState(
        epochs_done=state["epoch"],
        log=list(state["log"]),
        best=best,
        best_weights=best_weights,
        totals=dict(state["totals"]),
        saved_epoch=state["epoch"],
    )


@dataclass(frozen=True)
class TrainingObjects:
    """The objects whose state resume.pt carries besides :class:`RunState`."""

    model: Any
    optimizer: Any
    scheduler: Any
    scaler: Any


@dataclass(frozen=True)
class RunRecord:
    """Where and how a run trained, for train.json."""

    device: str
    world: int
    precision: str
    weights: dict  # what each backbone started from (models.pretrained.loaded_weights)


def save_resume(
    path: Path, progress: RunState, objects: TrainingObjects, *, improved: bool, rngs, cfg, fingerprint
) -> None:
    """Write resume.pt after ``progress.epochs_done`` epochs (``improved``: this epoch's weights are the best)."""
    state = {
        "model": progress.best_weights if improved else model_state(objects.model),
        "optimizer": objects.optimizer.state_dict(),
        "scheduler": objects.scheduler.state_dict(),
        "scaler": objects.scaler.state_dict(),
        "epoch": progress.epochs_done,
        "best": progress.best,
        "best_model": None if improved else progress.best_weights,  # None: the same as "model"
        "totals": progress.totals,
        "log": progress.log,
        "rng": rngs,
        "config": cfg.model_dump(),
        "fingerprint": fingerprint,
    }
    save_checkpoint(path, state, kind="resume")
    progress.saved_epoch = progress.epochs_done


def kept_files(out: Path, progress: RunState) -> str:
    """What of this run is still on disk, for an error message."""
    kept = []
    if progress.saved_epoch:
        kept.append(f"{out / 'resume.pt'} holds the training state after epoch {progress.saved_epoch}")
    if progress.best["epoch"]:
        kept.append(f"{out / 'best.pt'} the weights of epoch {progress.best['epoch']}")
    return "; ".join(kept) if kept else "no checkpoint of this run was written"


def run_summary(
    cfg: TrainConfig, progress: RunState, run: RunRecord, *, no_val: bool, resumed: list[dict] | None = None
) -> dict:
    """train.json: the run's settings, best epoch, totals, device, ``weights`` (what each backbone started from:
    :func:`models.pretrained.loaded_weights`; empty when the model trained from scratch) and, for a run that was
    interrupted and continued, ``resumed`` (:func:`engine.progress.resumption`)."""
    log, totals, best = progress.log, progress.totals, progress.best
    return {
        "model": cfg.model,
        "builder": cfg.builder,
        "epochs": cfg.epochs,
        "steps_budget": cfg.steps,  # None: the budget was `epochs`
        "img_size": cfg.img_size,
        "batch_size": cfg.batch_size,
        "selection": "last" if no_val else "best_val_dice",
        "best_val_dice": None if no_val else round(best["val_dice"], 4),  # percent
        "best_epoch": best["epoch"],
        "final_train_loss": log[-1]["train_loss"] if log else None,
        "steps": totals["steps"],
        "seconds": round(sum(r["seconds"] for r in log), 2),
        "images_per_second": round(totals["images"] / totals["train_seconds"], 3) if totals["train_seconds"] else None,
        "device_name": run.device,
        "world_size": run.world,
        "precision": run.precision,
        "weights": run.weights,
        "recipe": cfg.recipe(),  # what the (B) flag of the reports compares with the shared train: section
        **({"resumed": resumed} if resumed else {}),
    }
