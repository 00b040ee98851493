"""Run-time helpers of the stages: seeding and RNG state, device choice and name, terminal detection."""

from __future__ import annotations

import os
import platform
import random
import sys
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from core.errors import UserError


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - the legacy global state other libraries draw from
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """The python, numpy and torch RNG states, in a form ``torch.load(weights_only=True)`` accepts."""
    py_version, py_state, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()  # noqa: NPY002
    state = {
        "python": [py_version, list(py_state), py_gauss],
        "numpy": [np_name, torch.from_numpy(np_keys.astype(np.int64)), np_pos, np_has_gauss, np_gauss],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    version, py_state, gauss = state["python"]
    random.setstate((version, tuple(py_state), gauss))
    name, keys, pos, has_gauss, np_gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, np_gauss))  # noqa: NPY002
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> CUDA when present, else CPU; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {name} requested but no CUDA device is available")
    try:
        return torch.device(name)
    except RuntimeError as err:
        raise UserError(f"--device {name}: not a device torch knows (auto, cpu, cuda, cuda:N)") from err


def autocast_dtype(device: torch.device, amp: bool) -> torch.dtype | None:
    """The mixed-precision dtype of training with ``amp``: float16 on CUDA (with a GradScaler), bfloat16 on
    a CPU with native bf16 instructions (AVX512-BF16/AMX; no scaler needed), else ``None`` (fp32)."""
    if not amp:
        return None
    if device.type == "cuda":
        return torch.float16
    if device.type == "cpu" and torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return torch.bfloat16
    return None


def device_name(device: torch.device) -> str:
    """The GPU's name for a CUDA device, else the CPU model from /proc/cpuinfo (or ``platform``)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def interactive() -> bool:
    """True when stderr is a terminal (progress bars) rather than a log file (one line per epoch)."""
    return sys.stderr.isatty() and os.environ.get("CI") != "true"
