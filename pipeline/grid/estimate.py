"""How long each training will take on this machine, for the queue's order (longest first).

A committed ``train.json`` says how long a run took on the machine that made it; another CPU orders the models
otherwise (a bf16 CPU and an fp32 one disagree on which model is fastest). So the grid times a few optimiser steps
of each training about to run, here: the model its stage command names, its recipe's batch, image size and
precision, random data, one thread (:func:`probe`, in a subprocess, as many at once as the grid has cores). The
estimate is the probe's start-up (interpreter, imports, model: what a training pays before its first step too)
plus the time per step times the run's steps, its validation passes counted as a third of a step per batch.

Each measurement is cached per machine in ``~/.cache/dyglbench/step_seconds.json`` (``DYGLBENCH_CACHE_DIR``
elsewhere), keyed by the CPU model and whether it has bf16, the GPU's name, torch's version, and the model and
recipe settings that change a step's time; a later grid on the same machine reuses it.

    python -m pipeline.grid.estimate '{"cfg": {...}}'    # the probe: {"seconds_per_step": s, "startup_seconds": t}
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from core.fsutil import atomic_write_json
from pipeline.grid.dvc_adapter import StageInfo

CACHE_ENV = "DYGLBENCH_CACHE_DIR"
PROBE_STEPS = 4  # timed optimiser steps, after one untimed; their median counts (a stall skews a mean)
VALIDATION_STEP = 1 / 3  # a validation batch (forward only) as a share of a training step
# the flags of `python -m pipeline.train` that TrainConfig.from_params takes
TRAIN_FLAGS = {"data", "model", "out", "epochs", "batch_size", "img_size", "seed", "num_workers", "device"}
TRAIN_FLAGS |= {"selection", "sync_bn", "compile", "channels_last", "checkpoint_every"}
INT_FLAGS = {"epochs", "batch_size", "img_size", "seed", "num_workers", "checkpoint_every"}


def cache_file() -> Path:
    base = os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "dyglbench"
    return Path(base) / "step_seconds.json"


def cpu_model() -> tuple[str, bool]:
    """The CPU's model name and whether it has native bf16 (AVX512-BF16 or AMX), from /proc/cpuinfo."""
    import platform

    name, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and value.strip():
                    name = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                if name and flags:
                    break
    except OSError:
        pass
    return name, bool(flags & {"avx512_bf16", "amx_bf16"})


def gpu_name(index: int) -> str:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader", "-i", str(index)],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        out = ""
    return out or f"gpu {index}"


def machine(gpu: int | None = None) -> dict[str, Any]:
    """What a step's time depends on besides the model: CPU model, bf16, GPU name, torch version."""
    cpu, bf16 = cpu_model()
    try:
        torch_version = version("torch")
    except PackageNotFoundError:
        torch_version = "?"
    return {"cpu": cpu, "bf16": bf16, "gpu": None if gpu is None else gpu_name(gpu), "torch": torch_version}


def train_args(cmds: tuple[str, ...]) -> dict[str, Any] | None:
    """The settings a ``python -m pipeline.train ...`` command gives (``--batch-size 8`` -> ``batch_size: 8``);
    None for any other command."""
    for cmd in cmds:
        words = shlex.split(cmd)
        if "pipeline.train" not in words or "-m" not in words:
            continue
        given: dict[str, Any] = {}
        rest = words[words.index("pipeline.train") + 1 :]
        for i, word in enumerate(rest):
            if not word.startswith("--"):
                continue
            key = word[2:].replace("-", "_")
            if key.startswith("no_") and key[3:] in TRAIN_FLAGS:
                given[key[3:]] = False
            elif key in TRAIN_FLAGS:
                nxt = rest[i + 1] if i + 1 < len(rest) else None
                value = True if nxt is None or nxt.startswith("--") else nxt
                given[key] = int(value) if key in INT_FLAGS and str(value).isdigit() else value
        return given if {"data", "model", "out"} <= set(given) else None
    return None


@dataclass(frozen=True)
class Training:
    """A training stage as the estimate needs it."""

    cfg: dict[str, Any]  # its TrainConfig, as model_dump()
    steps: int  # optimiser steps of the whole run
    val_batches: int  # validation batches of the whole run


def training_of(stage: StageInfo) -> Training | None:
    """The training a stage runs (its config from the params.yaml of its folder and its command, its steps from
    the prepared split), or None when it is not a training or its data is not there yet."""
    from datasets.splits import resolve_selection
    from engine.params import TrainConfig, load_params
    from engine.recipe import epochs_for_steps

    given = train_args(stage.cmds)
    if given is None:
        return None
    data = Path(stage.wdir) / given["data"]
    try:
        cfg = TrainConfig.from_params(load_params(Path(stage.wdir) / "params.yaml"), **given)
        split = json.loads((data / "split.json").read_text(encoding="utf-8"))
        train_ids, val_ids = resolve_selection(split, cfg.selection, cfg.seed)
    except (Exception, SystemExit):  # noqa: BLE001 - no estimate: the training itself reports what is wrong
        return None
    per_epoch = max(1, len(train_ids) // cfg.batch_size)
    epochs = epochs_for_steps(cfg.steps, per_epoch) if cfg.steps is not None else cfg.epochs  # as pipeline.train
    val_batches = epochs * math.ceil(len(val_ids) / cfg.batch_size) if val_ids else 0
    return Training(cfg.model_dump(), epochs * per_epoch, val_batches)


def probe_key(cfg: dict[str, Any], where: dict[str, Any]) -> str:
    """The cache key of a measurement: the machine and what changes a step's time."""
    what = {k: cfg.get(k) for k in ("builder", "model_kwargs", "batch_size", "img_size", "amp", "channels_last")}
    what.update(compile=cfg.get("compile"), device=cfg.get("device"), threads=1, steps=PROBE_STEPS, format=2)
    text = json.dumps({"machine": where, "run": what}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


class StepTimer:
    """Estimates of trainings' seconds at one thread on this machine: cached measurements, else probes run now
    (``cores`` at once)."""

    def __init__(self, cores: int, say: Callable[[str], None], gpu: int | None = None) -> None:
        self.cores, self.say, self.gpu = max(1, cores), say, gpu
        self.machine: dict[str, Any] | None = None
        self.run_probes: Callable[[list[dict[str, Any]]], list[dict[str, float] | None]] = self._run_probes

    def estimate(self, stages: list[StageInfo]) -> list[float | None]:
        """Seconds each stage's training should take at one thread (None: not a training, or not measurable)."""
        trainings = [training_of(s) for s in stages]
        if not any(trainings):
            return [None] * len(stages)
        self.machine = self.machine or machine(self.gpu)
        path = cache_file()
        try:
            cache = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            cache = {}
        keys = [probe_key(t.cfg, self.machine) if t else None for t in trainings]
        todo = {k: t.cfg for k, t in zip(keys, trainings, strict=True) if k and t and k not in cache}
        if todo:
            t0 = time.perf_counter()
            for key, measured in zip(todo, self.run_probes(list(todo.values())), strict=True):
                if measured is not None:
                    cache[key] = {**measured, "run": todo[key]["model"], "machine": self.machine}
            atomic_write_json(path, cache)
            self.say(
                f"estimates: timed {len(todo)} model(s), {PROBE_STEPS} optimiser steps each at one thread, in "
                f"{time.perf_counter() - t0:.0f} s (cached in {path})"
            )
        out: list[float | None] = []
        for key, t in zip(keys, trainings, strict=True):
            got = cache.get(key, {}) if key else {}
            per_step, startup = got.get("seconds_per_step"), got.get("startup_seconds") or 0.0
            out.append(startup + per_step * (t.steps + VALIDATION_STEP * t.val_batches) if per_step and t else None)
        return out

    def _run_probes(self, cfgs: list[dict[str, Any]]) -> list[dict[str, float] | None]:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
        env["CUDA_VISIBLE_DEVICES"] = "" if self.gpu is None else str(self.gpu)
        results: list[dict[str, float] | None] = [None] * len(cfgs)
        pending = list(enumerate(cfgs))
        running: list[tuple[int, subprocess.Popen]] = []
        while pending or running:
            while pending and len(running) < self.cores:
                i, cfg = pending.pop(0)
                cmd = [sys.executable, "-m", "pipeline.grid.estimate", json.dumps({"cfg": cfg})]
                running.append(
                    (i, subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
                )
            i, proc = running.pop(0)
            out, err = proc.communicate()
            try:
                got = json.loads(out.strip().splitlines()[-1])
                results[i] = {k: float(got[k]) for k in ("seconds_per_step", "startup_seconds")}
            except (ValueError, KeyError, IndexError, TypeError):
                last = (err.strip().splitlines() or ["no output"])[-1]
                self.say(f"estimates: the probe of {cfgs[i].get('model')} failed ({last}); it is ordered without")
        return results


def probe(cfg_dump: dict[str, Any], steps: int = PROBE_STEPS) -> dict[str, float]:
    """Seconds per optimiser step of a training's model and recipe on random data (the median of ``steps`` steps,
    after an untimed one), and the seconds from the process's start to its first step."""
    import psutil
    import torch

    from engine.factory import model_from_entry
    from engine.params import TrainConfig
    from engine.recipe import optimisation
    from engine.runtime import autocast_dtype, resolve_device

    cfg = TrainConfig.model_validate(cfg_dump)
    device = resolve_device(cfg.device)
    amp_dtype = autocast_dtype(device, cfg.amp)
    torch.manual_seed(0)
    memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
    model = model_from_entry(cfg.model, cfg.builder, cfg.model_kwargs).to(device, memory_format=memory_format)
    net = torch.compile(model) if cfg.compile else model
    criterion, optimizer, scheduler, scaler = optimisation(model, cfg, steps + 1, device, amp_dtype)
    images = torch.randn(cfg.batch_size, 3, cfg.img_size, cfg.img_size, device=device).to(memory_format=memory_format)
    masks = (torch.rand(cfg.batch_size, 1, cfg.img_size, cfg.img_size, device=device) > 0.5).float()
    net.train()
    startup = time.time() - psutil.Process().create_time()
    times = []
    for _ in range(steps + 1):
        t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            loss = criterion(net(images), masks)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return {"seconds_per_step": float(statistics.median(times[1:])), "startup_seconds": startup}


def main(argv: list[str] | None = None) -> int:
    args = json.loads((argv or sys.argv[1:])[0])
    print(json.dumps(probe(args["cfg"], int(args.get("steps", PROBE_STEPS)))), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
