"""The job of :mod:`pipeline.grid`: a chain of DVC stage commands, run by any submitit executor.

:func:`run_chain` runs each stage's command exactly as ``dvc repro`` would (the resolved ``cmd`` from
the DVC index, through ``$SHELL -c``, in the stage's ``wdir``, with ``DVC_ROOT`` and ``DVC_STAGE`` set)
and writes its stdout and stderr to one log file per stage. It watches the coordinator's heartbeat file
and stops its command when the coordinator is gone (killed) or a newer grid has started, so that no
orphaned run keeps writing into the workspace; SIGTERM (``scancel``, or the coordinator cancelling)
stops the command too.

Every job process imports this module: it uses the standard library only (and psutil, a DVC
dependency, when it has to stop a command).
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class StageCommand:
    """One DVC stage as a job runs it."""

    name: str  # DVC addressing, e.g. train@synthetic-unet-42
    cmds: tuple[str, ...]  # the stage's resolved cmd (a list in dvc.yaml gives several)
    wdir: str
    log: str  # stdout and stderr of the commands


@dataclass(frozen=True)
class ChainJob:
    """What the coordinator submits: stages to run in order, and how."""

    stages: tuple[StageCommand, ...]
    root: str  # DVC_ROOT
    env: dict[str, str]  # added to the job's environment (thread limits)
    path_prefix: str  # put first on PATH: the folder of the coordinator's interpreter
    heartbeat: str
    run_id: str
    orphan_timeout_s: float


@dataclass
class StageResult:
    name: str
    returncode: int | None = None  # None: not started
    start: float | None = None
    end: float | None = None


@dataclass
class ChainResult:
    host: str
    cuda_visible_devices: str | None
    threads: str | None
    stages: list[StageResult] = field(default_factory=list)
    stopped: str | None = None  # why the job stopped its command (cancelled, or the coordinator is gone)


def read_heartbeat(path: str | os.PathLike) -> tuple[str, str] | None:
    """``(run_id, counter)`` from the coordinator's heartbeat file, ``None`` when unreadable."""
    try:
        run_id, counter = Path(path).read_text(encoding="utf-8").split()[:2]
    except (OSError, ValueError):
        return None
    return run_id, counter


class _Watchdog(threading.Thread):
    """Stops the job's current command when the coordinator's heartbeat stops or names another grid."""

    def __init__(self, job: ChainJob, stop_command) -> None:
        super().__init__(daemon=True, name="grid-watchdog")
        self.job, self.stop_command = job, stop_command
        self.reason: str | None = None
        self.finished = threading.Event()

    def check(self, last: tuple[str, str] | None, since: float) -> tuple[tuple[str, str] | None, float]:
        beat = read_heartbeat(self.job.heartbeat)
        now = time.monotonic()
        if beat is not None and beat[0] != self.job.run_id:
            self.reason = f"a newer grid ({beat[0]}) took over the workspace"
        elif beat != last:
            return beat, now
        elif now - since > self.job.orphan_timeout_s:
            self.reason = f"the coordinator's heartbeat stopped {now - since:.0f} s ago"
        return last, since

    def run(self) -> None:
        last, since = read_heartbeat(self.job.heartbeat), time.monotonic()
        interval = min(5.0, max(0.2, self.job.orphan_timeout_s / 4))
        while not self.finished.wait(interval):
            if self.reason is None:
                last, since = self.check(last, since)
            if self.reason:
                # again at every interval: a command started just as the reason was found is stopped too
                self.stop_command()


def _stage_preexec() -> None:  # pragma: no cover - runs in the child between fork and exec
    """The command takes Ctrl-C as usual (the job ignores SIGINT), and on Linux it gets SIGTERM when the
    job process dies, even by SIGKILL."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class _Stopped(Exception):
    """The job was cancelled (SIGTERM: ``scancel``, or the coordinator stopping a local job)."""


def _raise_stopped(signum, frame) -> None:  # noqa: ARG001
    raise _Stopped(signal.Signals(signum).name)


def _shell_argv(cmd: str) -> list[str]:
    """``cmd`` through the user's shell without its rc files, as ``dvc repro`` runs a stage command."""
    shell = os.environ.get("SHELL") or "/bin/sh"
    opts = {"bash": ["--noprofile", "--norc"], "zsh": ["--no-rcs"]}.get(Path(shell).name.lower(), [])
    return [shell, *opts, "-c", cmd]


def terminate_tree(proc: subprocess.Popen | int, grace_s: float = 5.0) -> None:
    """SIGTERM a process (a Popen of ours, or a pid) and its descendants; SIGKILL what is left after
    ``grace_s``. A Popen is reaped by its own ``wait`` so that its return code stays right."""
    import psutil

    pid = proc if isinstance(proc, int) else proc.pid
    try:
        root = psutil.Process(pid)
        others = root.children(recursive=True)
    except psutil.NoSuchProcess:
        return
    if isinstance(proc, int):
        others = [root, *others]
    else:
        proc.terminate()
    for p in others:
        try:
            p.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(others, timeout=grace_s)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    if not isinstance(proc, int):
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_chain(job: ChainJob) -> ChainResult:
    """Run the stages of ``job`` in order, stopping at the first failure; never raises for a failed stage."""
    result = ChainResult(
        host=socket.gethostname(),
        cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"),
        threads=job.env.get("OMP_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS"),
        stages=[StageResult(st.name) for st in job.stages],
    )
    beat = read_heartbeat(job.heartbeat)
    if beat is not None and beat[0] != job.run_id:
        # a queued cluster job of a grid that has since been replaced: run nothing
        result.stopped = f"a newer grid ({beat[0]}) took over the workspace"
        return result

    env = dict(os.environ)
    env.update(job.env)
    env["PATH"] = job.path_prefix + os.pathsep + env.get("PATH", "")
    env["DVC_ROOT"] = job.root
    current: list[subprocess.Popen] = []
    watchdog = _Watchdog(job, lambda: [terminate_tree(p) for p in list(current)])
    watchdog.start()
    in_main = threading.current_thread() is threading.main_thread()
    old_term = signal.signal(signal.SIGTERM, _raise_stopped) if in_main else None
    try:
        for stage, sres in zip(job.stages, result.stages, strict=True):
            env["DVC_STAGE"] = stage.name
            Path(stage.log).parent.mkdir(parents=True, exist_ok=True)
            sres.start = time.time()
            with open(stage.log, "w", encoding="utf-8") as log:
                for cmd in stage.cmds:
                    if watchdog.reason:
                        break
                    log.write(f"> {cmd}\n")
                    log.flush()
                    proc = subprocess.Popen(
                        _shell_argv(cmd),
                        cwd=stage.wdir,
                        env=env,
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        preexec_fn=_stage_preexec if os.name == "posix" else None,
                    )
                    current[:] = [proc]
                    try:
                        sres.returncode = proc.wait()
                    except _Stopped as stop:
                        terminate_tree(proc)
                        sres.returncode = proc.wait()
                        result.stopped = f"cancelled ({stop})"
                    current.clear()
                    if sres.returncode != 0:
                        break
                result.stopped = result.stopped or watchdog.reason
                if result.stopped:
                    log.write(f"\n[grid] command stopped: {result.stopped}\n")
            sres.end = time.time()
            if sres.returncode != 0 or result.stopped:
                break
    finally:
        watchdog.finished.set()
        if in_main:
            signal.signal(signal.SIGTERM, old_term)
    return result
